"""The simple denoisers: `none` and `knn`."""

from __future__ import annotations

import numpy as np

from .base import DenoiseInputs, Refined


def no_denoise(inputs: DenoiseInputs) -> Refined:
    """Keep the aggregated labels; train only on items some labeler covered."""
    return Refined(inputs.proba.copy(), inputs.covered.astype(float), {"changed": 0})


def knn_denoise(inputs: DenoiseInputs, threshold: float = 0.7) -> Refined:
    """Relabel an item with its neighbours' majority class where that class has kNN weight >= threshold
    and disagrees with the aggregated label (uncovered items included, which then gain a label)."""
    proba = inputs.proba.copy()
    knn_top = inputs.knn_proba.argmax(axis=1)
    confident = inputs.knn_proba.max(axis=1) >= threshold
    disagrees = (knn_top != proba.argmax(axis=1)) | ~inputs.covered
    relabel = confident & disagrees
    proba[relabel] = np.eye(proba.shape[1])[knn_top[relabel]]
    weight = (inputs.covered | relabel).astype(float)
    return Refined(proba, weight, {"changed": int(relabel.sum())})
