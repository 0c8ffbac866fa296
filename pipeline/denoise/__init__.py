"""Denoisers: refine the aggregated labels before training.

A denoiser is a function `(inputs: DenoiseInputs, **params) -> Refined`; register it in DENOISERS.
"""

from __future__ import annotations

from .base import DenoiseInputs, Refined
from .simple import knn_denoise, no_denoise

DENOISERS = {"none": no_denoise, "knn": knn_denoise}


def run_denoiser(name: str, inputs: DenoiseInputs, **params) -> Refined:
    if name not in DENOISERS:
        raise ValueError(f"unknown denoise.method '{name}'; available: {', '.join(sorted(DENOISERS))}")
    return DENOISERS[name](inputs, **params)


__all__ = ["DENOISERS", "DenoiseInputs", "Refined", "run_denoiser"]
