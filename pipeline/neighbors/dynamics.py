"""SiDyP's inputs from the neighbourhood: candidate sets, clean-pool selection, training dynamics of small heads."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..encoders import torch_threads


@dataclass
class CandidateSets:
    """SiDyP candidate sets. weights: (N, K) prior over candidates (zero = not a candidate)."""

    weights: np.ndarray
    certain: np.ndarray  # (N,) bool: a single candidate
    kind: np.ndarray  # (N,) "certain" | "dominant" | "uncertain"


def candidate_sets(knn_proba: np.ndarray, certain_threshold: float = 0.9,
                   dominant_threshold: float = 0.8, labels: np.ndarray | None = None,
                   clean: np.ndarray | None = None) -> CandidateSets:
    """Certain (top class >= certain_threshold: one-hot), dominant pair (top two sum >=
    dominant_threshold: those two, renormalized), or uncertain (every class with nonzero weight).

    With `labels` (N,) int (-1 = none) and `clean` (N,) bool, as in SiDyP the items judged clean keep
    their own label as their single (certain) candidate, kind "clean"; the kNN prior is for the rest.
    """
    n, n_classes = knn_proba.shape
    order = np.argsort(-knn_proba, axis=1)
    top1 = knn_proba[np.arange(n), order[:, 0]]
    top2 = knn_proba[np.arange(n), order[:, 1]] if n_classes > 1 else np.zeros(n)
    certain = top1 >= certain_threshold
    dominant = ~certain & (top1 + top2 >= dominant_threshold)
    weights = knn_proba.copy()
    weights[certain] = np.eye(n_classes)[order[certain, 0]]
    pair = np.zeros_like(weights)
    rows = np.flatnonzero(dominant)
    pair[rows, order[rows, 0]] = top1[rows]
    pair[rows, order[rows, 1]] = top2[rows]
    weights[dominant] = pair[dominant] / pair[dominant].sum(axis=1, keepdims=True)
    kind = np.where(certain, "certain", np.where(dominant, "dominant", "uncertain"))
    if labels is not None and clean is not None:
        keep = np.asarray(clean, dtype=bool) & (np.asarray(labels) >= 0)
        weights[keep] = np.eye(n_classes)[np.asarray(labels)[keep]]
        certain = certain | keep
        kind = np.where(keep, "clean", kind)
    return CandidateSets(weights, certain, kind)


def clean_by_confidence(confidence: np.ndarray, eligible: np.ndarray, fraction: float) -> np.ndarray:
    """(N,) bool: the `fraction` of eligible items with the highest label-model confidence."""
    idx = np.flatnonzero(eligible)
    keep = max(1, int(round(fraction * len(idx)))) if len(idx) else 0
    chosen = idx[np.argsort(-confidence[idx], kind="stable")[:keep]]
    mask = np.zeros(len(confidence), dtype=bool)
    mask[chosen] = True
    return mask


@dataclass
class TrainingDynamics:
    """What small classifier heads fit on the noisy labels did, epoch by epoch. M heads, E epochs.

    proba: (M, E, N, K) softmax of each head after each epoch (eval mode).
    distance: (M, E, N) L2 distance of each item's hidden vector to the centroid of its noisy class
    (centroids from the fitted items' noisy labels only); NaN for items without a label.
    """

    proba: np.ndarray
    distance: np.ndarray

    def features(self) -> np.ndarray:
        """(N, E*K) the head-averaged per-epoch class probabilities: the dynamics feature W."""
        mean = self.proba.mean(axis=0)  # (E, N, K)
        return np.transpose(mean, (1, 0, 2)).reshape(mean.shape[1], -1).astype(np.float32)

    def final_proba(self) -> np.ndarray:
        """(N, K) the head-averaged probabilities after the last epoch."""
        return self.proba[:, -1].mean(axis=0)


def training_dynamics(embeddings: np.ndarray, labels: np.ndarray, fit: np.ndarray, n_classes: int,
                      n_heads: int = 3, epochs: int = 10, hidden: int = 256, lr: float = 1e-3,
                      weight_decay: float = 1e-4, batch_size: int = 64, seed: int = 0,
                      threads: int | None = 1) -> TrainingDynamics:
    """Fit `n_heads` small MLP heads (D -> hidden -> K, dropout 0.1 / 0.2 / 0.3 ...) on the frozen
    embeddings (N, D) with the noisy `labels` (N,) int (-1 = none) of the items in `fit` (N,) bool,
    and record every item's probabilities and centroid distance after each epoch. CPU, seconds."""
    with torch_threads(threads):
        return _training_dynamics(embeddings, labels, fit, n_classes, n_heads, epochs, hidden, lr, weight_decay,
                                  batch_size, seed)


def _training_dynamics(embeddings, labels, fit, n_classes, n_heads, epochs, hidden, lr, weight_decay, batch_size,
                       seed) -> TrainingDynamics:
    import torch

    labels = np.asarray(labels)
    fit = np.asarray(fit, dtype=bool) & (labels >= 0)
    if not fit.any():
        raise ValueError("training_dynamics: no labelled item to fit the heads on")
    x_all = torch.as_tensor(np.ascontiguousarray(embeddings, dtype=np.float32))
    y_all = torch.as_tensor(np.array(labels, dtype=np.int64))
    fit_idx = torch.as_tensor(np.flatnonzero(fit))
    n = len(labels)
    proba = np.zeros((n_heads, epochs, n, n_classes), dtype=np.float32)
    distance = np.full((n_heads, epochs, n), np.nan, dtype=np.float32)
    labelled = torch.as_tensor(labels >= 0)
    for m in range(n_heads):
        torch.manual_seed(seed * 1000 + m)
        body = torch.nn.Sequential(torch.nn.Dropout(0.1 * (m + 1)), torch.nn.Linear(x_all.shape[1], hidden),
                                   torch.nn.ReLU())
        head = torch.nn.Linear(hidden, n_classes)
        params = [*body.parameters(), *head.parameters()]
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        gen = torch.Generator().manual_seed(seed * 1000 + m)
        for epoch in range(epochs):
            body.train()
            order = fit_idx[torch.randperm(len(fit_idx), generator=gen)]
            for start in range(0, len(order), batch_size):
                b = order[start:start + batch_size]
                loss = torch.nn.functional.cross_entropy(head(body(x_all[b])), y_all[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
            body.eval()
            with torch.no_grad():
                h = torch.cat([body(x_all[i:i + 65536]) for i in range(0, n, 65536)])
                proba[m, epoch] = torch.softmax(head(h), dim=-1).numpy()
                onehot = torch.nn.functional.one_hot(y_all[fit_idx], n_classes).float()  # (F, K)
                counts = onehot.sum(0)
                centroids = (onehot.T @ h[fit_idx]) / counts.clamp_min(1)[:, None]  # (K, H)
                lab = torch.where(labelled, y_all, 0)
                d = (h - centroids[lab]).norm(dim=1)
                d[~labelled | (counts[lab] == 0)] = float("nan")
                distance[m, epoch] = d.numpy()
    return TrainingDynamics(proba, distance)


def clean_by_dynamics(dynamics: TrainingDynamics, eligible: np.ndarray, fraction: float) -> np.ndarray:
    """(N,) bool: the `fraction` of eligible items whose hidden vectors stay closest to their noisy
    class centroid over training (score = mean over heads of mean_e(d) + std_e(d), lowest = clean)."""
    d = dynamics.distance  # (M, E, N)
    known = ~np.isnan(d).any(axis=(0, 1))
    score = np.full(d.shape[2], np.inf)
    dk = d[:, :, known]
    score[known] = (dk.mean(axis=1) + dk.std(axis=1, ddof=1 if d.shape[1] > 1 else 0)).mean(axis=0)
    return clean_by_confidence(-score, np.asarray(eligible, dtype=bool) & np.isfinite(score), fraction)
