"""Training losses. logits: (B, K); target: (B, K) label distribution; weight: (B,). Return a scalar."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against a soft target distribution, weighted per item."""
    per_item = -(target * F.log_softmax(logits, dim=-1)).sum(dim=-1)
    return (per_item * weight).sum() / weight.sum().clamp_min(1e-8)


def hard_cross_entropy(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against the target's most probable class."""
    per_item = F.cross_entropy(logits, target.argmax(dim=-1), reduction="none")
    return (per_item * weight).sum() / weight.sum().clamp_min(1e-8)


LOSSES = {"soft_ce": soft_cross_entropy, "ce": hard_cross_entropy}


def get_loss(name: str):
    if name not in LOSSES:
        raise ValueError(f"unknown train.loss '{name}'; available: {', '.join(sorted(LOSSES))}")
    return LOSSES[name]
