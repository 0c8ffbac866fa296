"""Temperature scaling, vector scaling and reliability diagrams. Pure functions: arrays in, arrays (or SVG
text) out.

logits: (N, K) float; labels: (N,) int class indices; proba: (N, K) rows summing to 1.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize, minimize_scalar
from scipy.special import log_softmax, softmax

from .crossfit import cross_fit, fold_parts


def scaled_proba(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """(N, K) softmax(logits / temperature)."""
    return softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of `labels` under softmax(logits / temperature)."""
    logp = log_softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)
    return float(-logp[np.arange(len(labels)), np.asarray(labels)].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """The temperature T > 0 minimizing the NLL of `labels` (Guo et al., ICML 2017).

    Items with label < 0 (unknown) are ignored; with none left, returns 1.0. Searched on log T within
    `bounds`.
    """
    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels)
    known = labels >= 0
    if not known.any():
        return 1.0
    logits, labels = logits[known], labels[known]
    res = minimize_scalar(lambda log_t: nll(logits, labels, float(np.exp(log_t))),
                          bounds=(np.log(bounds[0]), np.log(bounds[1])), method="bounded",
                          options={"xatol": 1e-4})
    return float(np.exp(res.x))


def crossfit_nll(logits: np.ndarray, labels: np.ndarray, folds: int = 2, seed: int = 0) -> float:
    """Out-of-sample NLL after temperature scaling: the known items (label >= 0) are split into `folds` folds by
    a seeded permutation; each fold is scored at the temperature fitted on the others, and the per-item NLLs
    are averaged. A proper scoring rule of the calibrated model that does not reward fitting T in-sample.
    With fewer known items than folds, the in-sample NLL at the fitted temperature. NaN with none known."""
    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels)
    known = np.flatnonzero(labels >= 0)
    if len(known) == 0:
        return float("nan")
    if len(known) < max(folds, 2):
        return nll(logits[known], labels[known], fit_temperature(logits[known], labels[known]))

    def part_nll(train: np.ndarray, part: np.ndarray) -> np.ndarray:
        return np.full(len(part), nll(logits[part], labels[part], fit_temperature(logits[train], labels[train])))

    return float(cross_fit(part_nll, fold_parts(known, folds, seed), len(labels))[known].mean())


def fit_vector_scaling(logits: np.ndarray, labels: np.ndarray, l2: float = 1e-2) -> tuple[np.ndarray, np.ndarray]:
    """Per-class scale w (K,) and bias b (K,) minimizing the NLL of softmax(logits * w + b) (vector scaling,
    Guo et al., ICML 2017) plus l2 * (|w - 1/T|^2 + |b|^2), which pulls it toward temperature scaling.

    Unlike a temperature, the bias can change the argmax: it also undoes a class-dependent bias the noisy
    training labels left. Items with label < 0 are ignored; with none left, returns (ones, zeros).
    """
    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels)
    k = logits.shape[1]
    known = labels >= 0
    if not known.any():
        return np.ones(k), np.zeros(k)
    logits, labels = logits[known], labels[known]
    w0 = 1.0 / fit_temperature(logits, labels)
    rows = np.arange(len(labels))

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:k], theta[k:]
        logp = log_softmax(logits * w + b, axis=1)
        grad = np.exp(logp)
        grad[rows, labels] -= 1  # d(-log p_y) / d(logit) per item
        grad /= len(labels)
        value = -logp[rows, labels].mean() + l2 * (np.sum((w - w0) ** 2) + np.sum(b ** 2))
        return value, np.r_[(grad * logits).sum(0) + 2 * l2 * (w - w0), grad.sum(0) + 2 * l2 * b]

    theta = minimize(objective, np.r_[np.full(k, w0), np.zeros(k)], jac=True, method="L-BFGS-B").x
    return theta[:k], theta[k:]


def reliability_bins(labels: np.ndarray, proba: np.ndarray, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Per equal-width confidence bin: `count` (n_bins,), `confidence` and `accuracy` (n_bins,, NaN when empty)."""
    proba = np.asarray(proba, dtype=float)
    conf = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == np.asarray(labels)).astype(float)
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    count = np.bincount(bins, minlength=n_bins).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(bins, weights=conf, minlength=n_bins) / count
        accuracy = np.bincount(bins, weights=correct, minlength=n_bins) / count
    return {"count": count, "confidence": confidence, "accuracy": accuracy}


def reliability_svg(curves: dict[str, dict[str, np.ndarray]], size: int = 320, title: str = "") -> str:
    """A self-contained SVG reliability diagram: accuracy against confidence per bin, one line per curve
    (e.g. {"before": reliability_bins(...), "after": ...}), the diagonal = perfect calibration."""
    pad, inner = 40, size - 60
    colors = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd"]

    def xy(conf: float, acc: float) -> tuple[float, float]:
        return pad + conf * inner, pad / 2 + (1 - acc) * inner

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" '
             f'viewBox="0 0 {size} {size}" font-family="sans-serif" font-size="11">',
             f'<rect x="{pad}" y="{pad / 2}" width="{inner}" height="{inner}" fill="none" stroke="#999"/>',
             f'<line x1="{pad}" y1="{pad / 2 + inner}" x2="{pad + inner}" y2="{pad / 2}" '
             'stroke="#999" stroke-dasharray="4 3"/>']
    for tick in (0, 0.5, 1):
        x, y = xy(tick, tick)
        parts.append(f'<text x="{x}" y="{pad / 2 + inner + 14}" text-anchor="middle">{tick:g}</text>')
        parts.append(f'<text x="{pad - 6}" y="{y + 4}" text-anchor="end">{tick:g}</text>')
    parts.append(f'<text x="{pad + inner / 2}" y="{size - 4}" text-anchor="middle">confidence</text>')
    parts.append(f'<text x="10" y="{pad / 2 + inner / 2}" transform="rotate(-90 10 {pad / 2 + inner / 2})" '
                 'text-anchor="middle">accuracy</text>')
    if title:
        parts.append(f'<text x="{pad + inner / 2}" y="13" text-anchor="middle">{title}</text>')
    for i, (name, curve) in enumerate(curves.items()):
        color = colors[i % len(colors)]
        ok = curve["count"] > 0
        points = [xy(c, a) for c, a in zip(curve["confidence"][ok], curve["accuracy"][ok])]
        if points:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
            parts.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color}"/>' for x, y in points)
        parts.append(f'<text x="{pad + 8}" y="{pad / 2 + 14 + 14 * i}" fill="{color}">{name}</text>')
    parts.append("</svg>")
    return "\n".join(parts)
