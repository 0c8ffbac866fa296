"""Classification metrics. y: (N,) int class indices; proba: (N, K) rows summing to 1."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred))) if len(y_true) else float("nan")


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    return float(f1_score(y_true, y_pred, labels=list(range(n_classes)), average="macro", zero_division=0))


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, n_bins: int = 15) -> float:
    """ECE with equal-width confidence bins: sum_b |B|/N * |acc(B) - conf(B)|."""
    proba = np.asarray(proba, dtype=float)
    if len(proba) == 0:
        return float("nan")
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == np.asarray(y_true)
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def brier_score(y_true: np.ndarray, proba: np.ndarray) -> float:
    proba = np.asarray(proba, dtype=float)
    onehot = np.eye(proba.shape[1])[np.asarray(y_true)]
    return float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))


def classification_report(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """accuracy, macro_f1, ece (15 bins) and brier for the items with a gold label (y >= 0)."""
    y_true = np.asarray(y_true)
    known = y_true >= 0
    y, p = y_true[known], np.asarray(proba)[known]
    if len(y) == 0:
        return {}
    pred = p.argmax(axis=1)
    return {"accuracy": accuracy(y, pred), "macro_f1": macro_f1(y, pred, p.shape[1]),
            "ece": expected_calibration_error(y, p), "brier": brier_score(y, p), "n": int(len(y))}
