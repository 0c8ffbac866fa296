"""What every denoiser receives and returns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class DenoiseInputs:
    """Everything a denoiser may use. N items, K classes, D embedding dims. No gold labels."""

    proba: np.ndarray  # (N, K) aggregated label distribution
    covered: np.ndarray  # (N,) bool: at least one labeler voted
    knn_proba: np.ndarray  # (N, K) neighbour label distribution
    candidates: np.ndarray  # (N, K) SiDyP candidate weights
    certain: np.ndarray  # (N,) bool
    embeddings: np.ndarray  # (N, D)
    split: np.ndarray  # (N,) "train" | "valid" | "test"
    texts: list[str] | None = None
    seed: int = 0
    dynamics: object | None = None  # neighbors.TrainingDynamics of heads fit on the noisy labels, if computed


@dataclass
class Refined:
    """proba: (N, K) refined distribution; weight: (N,) training weight (0 = do not train on it)."""

    proba: np.ndarray
    weight: np.ndarray
    info: dict | None = None
