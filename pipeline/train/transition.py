"""Noise transition matrices T (K, K), T[i, j] = P(noisy label j | true class i), for `loss: forward`.

- `transition_from_gold`: counted on items that have both a gold label and a noisy label (the valid split
  when the user has gold valid labels), with pseudo-counts on the diagonal (3 per class).
- `transition_from_anchors`: without gold, Patrini et al.'s (CVPR 2017) anchor-point estimate from a model
  trained on the noisy labels: row i is that model's noisy-label distribution at the item it finds most
  typical of class i (the `quantile` of its class-i probabilities, robust to outliers).
"""

from __future__ import annotations

import numpy as np


def transition_from_gold(noisy: np.ndarray, gold: np.ndarray, smoothing: float = 3.0,
                         prior: np.ndarray | None = None) -> np.ndarray:
    """(K, K) row-stochastic T from noisy label distributions (N, K) (one-hot for hard labels; rows of zeros
    = no noisy label) and gold labels (N,) (-1 = unknown). Row i is the mean noisy distribution of the items
    of gold class i, with `smoothing` pseudo-items labeled i added, so a class with few gold items stays
    close to 'no noise' (the identity, under which `forward` is plain soft CE). `prior` (K, K), row-stochastic:
    the pseudo-items' noisy distribution per class instead of the identity.

    smoothing = 3 was chosen on valid halves of the five end-model sets (T counted on half A, half B's gold NLL
    after the trained model's temperature): mean NLL 0.655 / 0.644 / 0.646 / 0.655 for 2 / 3 / 5 / 10 pseudo-items,
    0.679 for 1; the anchor estimate as the prior was worse (BENCHMARKS.md, end model, session 6)."""
    noisy, gold = np.asarray(noisy, dtype=float), np.asarray(gold)
    if noisy.ndim != 2 or len(noisy) != len(gold):
        raise ValueError(f"transition_from_gold: noisy must be (N, K) and gold (N,), got {noisy.shape} and {gold.shape}")
    k = noisy.shape[1]
    if gold.size and (gold.max() >= k or gold.min() < -1):
        raise ValueError(f"transition_from_gold: gold labels must be in [-1, {k - 1}]")
    counts = smoothing * (np.eye(k) if prior is None else np.asarray(prior, dtype=float))
    known = (gold >= 0) & (noisy.sum(axis=1) > 0)
    np.add.at(counts, gold[known], noisy[known])
    totals = counts.sum(axis=1, keepdims=True)
    return np.where(totals > 0, counts / np.where(totals > 0, totals, 1), np.eye(k))


def transition_from_anchors(noisy_proba: np.ndarray, quantile: float = 0.97) -> np.ndarray:
    """(K, K) T from a noisy-label model's predicted probabilities (N, K) on the training items: row i is the
    prediction at the item whose class-i probability is the `quantile` of all items' (Patrini et al. 2017)."""
    proba = np.asarray(noisy_proba, dtype=float)
    if proba.ndim != 2 or len(proba) == 0:
        raise ValueError(f"transition_from_anchors: need (N, K) probabilities with N > 0, got {proba.shape}")
    rows = []
    for i in range(proba.shape[1]):
        level = np.quantile(proba[:, i], quantile, method="higher")
        rows.append(proba[np.argmin(np.abs(proba[:, i] - level))])
    t = np.clip(np.array(rows), 0, None)
    return t / t.sum(axis=1, keepdims=True)
