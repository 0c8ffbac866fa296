"""Calibration of LLM label probabilities: raw LLM probabilities favour some label words and are overconfident.

Without gold: `ContextualCalibrator` (Zhao et al., ICML 2021, "Calibrate before use"): estimate a labeler's
label-word bias from content-free inputs ("N/A", "", "[MASK]") or from its mean prediction over unlabeled
items, divide it out and renormalize. With a gold seed: `TemperatureScaler` (one temperature per labeler,
Guo et al. 2017) or `HistogramBinning` (top-label histogram binning, Zadrozny & Elkan 2001).

Shapes: `proba` is (N, K) for one labeler or (N, M, K) for M labelers (the label stage's soft votes);
an all-zero row is an abstain and stays all-zero. Gold `y` is (N,) int, -1 where unknown. Fitted
per-labeler parameters have a leading M axis ((M, K) bias, (M,) temperature); with (N, K) input, M = 1
and they are squeezed.
"""

from __future__ import annotations

import numpy as np
from scipy.special import softmax

from pipeline.calibration import fit_temperature

CONTENT_FREE_INPUTS = ("N/A", "", "[MASK]")
_EPS = 1e-6


def _as3d(proba: np.ndarray) -> tuple[np.ndarray, bool]:
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim not in (2, 3):
        raise ValueError(f"proba must be (N, K) or (N, M, K), got shape {p.shape}")
    if p.shape[-1] < 2:
        raise ValueError(f"proba needs at least 2 classes on its last axis, got shape {p.shape}")
    if np.any(p < 0) or not np.all(np.isfinite(p)):
        raise ValueError("proba must be finite and non-negative")
    return (p[:, None, :], True) if p.ndim == 2 else (p, False)


def _answered(p3: np.ndarray) -> np.ndarray:
    """(N, M) bool: rows that are not abstains (not all-zero)."""
    return p3.sum(axis=-1) > 0


def renormalize(proba: np.ndarray) -> np.ndarray:
    """Rows scaled to sum to 1 (any shape (..., K)); all-zero rows (abstains) stay zero."""
    p = np.asarray(proba, dtype=np.float64)
    s = p.sum(axis=-1, keepdims=True)
    return np.divide(p, s, out=np.zeros_like(p), where=s > 0)


def verbal_to_proba(pred: np.ndarray, confidence: np.ndarray, n_classes: int) -> np.ndarray:
    """(N, K) distribution from a stated label (N,) int (-1: abstain) and a stated confidence (N,) in [0, 1].

    The stated label gets `confidence`; the other K - 1 classes share the rest equally.
    """
    pred, conf = np.asarray(pred, dtype=int), np.asarray(confidence, dtype=np.float64)
    if pred.shape != conf.shape or pred.ndim != 1:
        raise ValueError(f"pred and confidence must be (N,) of one length, got {pred.shape} and {conf.shape}")
    if np.any((conf < 0) | (conf > 1)) or np.any(pred >= n_classes) or np.any(pred < -1):
        raise ValueError("confidence must be within [0, 1] and pred within -1..K-1")
    out = np.repeat(((1 - conf) / (n_classes - 1))[:, None], n_classes, axis=1)
    out[np.arange(len(pred)), np.maximum(pred, 0)] = conf
    out[pred < 0] = 0.0
    return out


def contextual_calibration(proba: np.ndarray, bias: np.ndarray, prior: np.ndarray | None = None) -> np.ndarray:
    """proba / bias (times an optional class prior), renormalized.

    proba: (N, K) with bias (K,), or (N, M, K) with bias (M, K). prior: (K,) class prior to restore
    (useful when the bias was the mean prediction over unlabeled items of an imbalanced set).
    """
    p = np.asarray(proba, dtype=np.float64)
    b = np.maximum(np.asarray(bias, dtype=np.float64), _EPS)
    if b.shape != p.shape[1:]:
        raise ValueError(f"bias shape {b.shape} does not match proba shape {p.shape} (need {p.shape[1:]})")
    q = p / b
    if prior is not None:
        q = q * np.asarray(prior, dtype=np.float64)
    return renormalize(q)


class ContextualCalibrator:
    """Divide out each labeler's label-word bias (no gold needed).

    fit(bias_proba): the labeler's probabilities on content-free inputs (C, K) / (C, M, K) — prompts
    whose item is "N/A", "", "[MASK]" — or on unlabeled items (N, K) / (N, M, K); `bias_` is the mean
    of the non-abstain rows, (K,) or (M, K). prior: optional (K,) class prior multiplied back in.
    """

    def __init__(self, prior: np.ndarray | None = None):
        self.prior = prior

    def fit(self, bias_proba: np.ndarray, y: np.ndarray | None = None) -> ContextualCalibrator:
        p3, squeeze = _as3d(bias_proba)
        ok = _answered(p3)
        if not ok.any(axis=0).all():
            raise ValueError("every labeler needs at least one non-abstain row to estimate its bias")
        bias = np.stack([renormalize(p3[ok[:, m], m]).mean(axis=0) for m in range(p3.shape[1])])
        self.bias_ = bias[0] if squeeze else bias
        return self

    def transform(self, proba: np.ndarray) -> np.ndarray:
        """(N, K) or (N, M, K) calibrated probabilities (abstain rows stay zero)."""
        _check_fitted(self, "bias_")
        return contextual_calibration(proba, self.bias_, self.prior)

    def fit_transform(self, proba: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        """Fit on `proba` itself (mean-prediction bias) and transform it."""
        return self.fit(proba).transform(proba)


class TemperatureScaler:
    """One temperature per labeler fitted on a gold seed: softmax(log p / T_m) minimizes the seed's NLL.

    fit(proba, y): proba (N, K) or (N, M, K), y (N,) int with -1 for unknown; a labeler with no
    answered gold item keeps T = 1. `temperature_`: float, or (M,) array.
    """

    def __init__(self, bounds: tuple[float, float] = (0.05, 20.0), eps: float = 1e-4):
        self.bounds = bounds
        self.eps = eps

    def _logits(self, p: np.ndarray) -> np.ndarray:
        return np.log(np.clip(renormalize(p), self.eps, 1.0))

    def fit(self, proba: np.ndarray, y: np.ndarray) -> TemperatureScaler:
        p3, squeeze = _as3d(proba)
        y = _check_y(y, len(p3), p3.shape[-1])
        ok = _answered(p3) & (y >= 0)[:, None]
        temps = np.array([fit_temperature(self._logits(p3[ok[:, m], m]), y[ok[:, m]], self.bounds)
                          if ok[:, m].any() else 1.0 for m in range(p3.shape[1])])
        self.temperature_ = float(temps[0]) if squeeze else temps
        return self

    def transform(self, proba: np.ndarray) -> np.ndarray:
        """(N, K) or (N, M, K) temperature-scaled probabilities (abstain rows stay zero)."""
        _check_fitted(self, "temperature_")
        p3, squeeze = _as3d(proba)
        t = np.atleast_1d(np.asarray(self.temperature_, dtype=np.float64))
        if len(t) != p3.shape[1]:
            raise ValueError(f"fitted for {len(t)} labelers, got proba with {p3.shape[1]}")
        out = softmax(self._logits(p3) / t[None, :, None], axis=-1)
        out[~_answered(p3)] = 0.0
        return out[:, 0] if squeeze else out


class HistogramBinning:
    """Top-label histogram binning per labeler, fitted on a gold seed.

    The confidence of the predicted class (max probability) is binned; in each bin it is replaced by the
    seed's accuracy there, shrunk toward the labeler's overall seed accuracy with `prior_strength`
    pseudo-items (empty bins get the overall accuracy). The other classes share the remaining mass in
    proportion to their original probabilities. strategy: "uniform" (equal-width bins on [0, 1]) or
    "quantile" (equal-count bins on the seed). `edges_`: (M, n_bins + 1); `accuracy_`: (M, n_bins).
    """

    def __init__(self, n_bins: int = 10, strategy: str = "uniform", prior_strength: float = 2.0):
        if strategy not in ("uniform", "quantile"):
            raise ValueError(f"strategy must be 'uniform' or 'quantile', got {strategy!r}")
        if n_bins < 1:
            raise ValueError(f"n_bins must be >= 1, got {n_bins}")
        self.n_bins = n_bins
        self.strategy = strategy
        self.prior_strength = prior_strength

    def fit(self, proba: np.ndarray, y: np.ndarray) -> HistogramBinning:
        p3, squeeze = _as3d(proba)
        y = _check_y(y, len(p3), p3.shape[-1])
        ok = _answered(p3) & (y >= 0)[:, None]
        edges, acc = [], []
        for m in range(p3.shape[1]):
            p = renormalize(p3[ok[:, m], m])
            conf, correct = p.max(axis=1), (p.argmax(axis=1) == y[ok[:, m]]).astype(float)
            if self.strategy == "quantile" and len(conf):
                e = np.quantile(conf, np.linspace(0, 1, self.n_bins + 1))
                e[0], e[-1] = 0.0, 1.0
                e = np.maximum.accumulate(e)
            else:
                e = np.linspace(0, 1, self.n_bins + 1)
            b = self._bin(conf, e)
            overall = correct.mean() if len(correct) else 0.5
            count = np.bincount(b, minlength=self.n_bins)
            hits = np.bincount(b, weights=correct, minlength=self.n_bins)
            acc.append((hits + self.prior_strength * overall) / (count + self.prior_strength))
            edges.append(e)
        self.edges_, self.accuracy_ = np.array(edges), np.array(acc)
        self._squeeze = squeeze
        return self

    def _bin(self, conf: np.ndarray, edges: np.ndarray) -> np.ndarray:
        return np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, self.n_bins - 1)

    def transform(self, proba: np.ndarray) -> np.ndarray:
        """(N, K) or (N, M, K) binned probabilities (abstain rows stay zero)."""
        _check_fitted(self, "accuracy_")
        p3, squeeze = _as3d(proba)
        if p3.shape[1] != len(self.accuracy_):
            raise ValueError(f"fitted for {len(self.accuracy_)} labelers, got proba with {p3.shape[1]}")
        p3 = renormalize(p3)
        out = np.zeros_like(p3)
        n, k = len(p3), p3.shape[-1]
        for m in range(p3.shape[1]):
            p = p3[:, m]
            top = p.argmax(axis=1)
            new_conf = self.accuracy_[m][self._bin(p.max(axis=1), self.edges_[m])]
            rest = p.copy()
            rest[np.arange(n), top] = 0.0
            s = rest.sum(axis=1, keepdims=True)
            rest = np.where(s > 0, rest / np.where(s > 0, s, 1), 1.0 / (k - 1))
            rest[np.arange(n), top] = 0.0
            q = rest * (1 - new_conf)[:, None]
            q[np.arange(n), top] = new_conf
            out[:, m] = q
        out[~_answered(p3)] = 0.0
        return out[:, 0] if squeeze else out


def _check_y(y: np.ndarray, n: int, k: int) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must be an (N,) int array with N = {n}, got shape {y.shape} dtype {y.dtype}")
    if np.any(y >= k) or np.any(y < -1):
        raise ValueError(f"y values must be within -1..{k - 1}")
    return y


def _check_fitted(obj: object, attr: str) -> None:
    if not hasattr(obj, attr):
        raise RuntimeError(f"{type(obj).__name__} is not fitted: call fit() first")
