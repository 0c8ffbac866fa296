"""Denoisers: refine the aggregated labels before training.

A denoiser is a function `(inputs: DenoiseInputs, **params) -> Refined`; register it in DENOISERS.
"""

from __future__ import annotations

from .base import DenoiseInputs, Refined
from .confident import confident_learning_denoise
from .guard import guard
from .sidyp import sidyp_denoise
from .simple import knn_denoise, no_denoise

DENOISERS = {"none": no_denoise, "knn": knn_denoise, "confident-learning": confident_learning_denoise,
             "sidyp": sidyp_denoise}


def run_denoiser(name: str, inputs: DenoiseInputs, guard_tolerance: float | None = None, **params) -> Refined:
    """Run denoiser `name`; with `guard_tolerance`, step aside when it looks harmful on the noisy
    validation labels (see `guard`)."""
    if name not in DENOISERS:
        raise ValueError(f"unknown denoise.method '{name}'; available: {', '.join(sorted(DENOISERS))}")
    refined = DENOISERS[name](inputs, **params)
    if guard_tolerance is not None and name != "none":
        refined = guard(inputs, refined, guard_tolerance)
    return refined


__all__ = ["DENOISERS", "DenoiseInputs", "Refined", "run_denoiser"]
