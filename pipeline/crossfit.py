"""Cross-fitting: out-of-fold predictions, so that every item is scored by a model that did not see its label."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def fold_parts(items: np.ndarray, folds: int, seed: int | np.random.Generator = 0) -> list[np.ndarray]:
    """`items` (G,) indices in max(2, min(folds, G)) folds of a seeded random permutation (a Generator is drawn
    from, so repeated calls give new splits)."""
    order = np.random.default_rng(seed).permutation(np.asarray(items))
    return np.array_split(order, max(2, min(folds, len(order))))


def cross_fit(fit_predict: Callable[[np.ndarray, np.ndarray], np.ndarray], parts: list[np.ndarray], n: int) -> np.ndarray:
    """Out-of-fold rows: for each part, `fit_predict(train, part)` fits on the other parts' indices and returns
    the rows (len(part), ...) of `part`. Returns (n, ...) with those rows at the parts' indices and NaN (zeros
    for integer results) at indices in no part."""
    out = None
    for i, part in enumerate(parts):
        train = np.concatenate([p for j, p in enumerate(parts) if j != i])
        rows = np.asarray(fit_predict(train, part))
        if out is None:
            out = np.full((n, *rows.shape[1:]), np.nan) if rows.dtype.kind == "f" else np.zeros((n, *rows.shape[1:]),
                                                                                                 rows.dtype)
        out[part] = rows
    return out
