"""Label models: estimate how far to trust each labeler and combine their votes.

Every model follows one API: `fit(votes, n_classes, gold=None, class_prior=None)`,
`predict_proba(votes) -> (N, K)`, `predict(votes) -> (N,)`, `report() -> dict`.
`votes` is (N, M) int with -1 for abstain, or soft votes (N, M, K) float (rows of zeros = abstain).
"""

from __future__ import annotations

from .base import LabelModel
from .majority import MajorityVote

LABEL_MODELS: dict[str, type[LabelModel]] = {"majority": MajorityVote}


def make_label_model(name: str, **params) -> LabelModel:
    """Instantiate a registered label model by name."""
    if name not in LABEL_MODELS:
        raise ValueError(f"unknown aggregate.method '{name}'; available: {', '.join(sorted(LABEL_MODELS))}")
    return LABEL_MODELS[name](**params)


__all__ = ["LABEL_MODELS", "LabelModel", "MajorityVote", "make_label_model"]
