"""Label models: estimate how far to trust each labeler and combine their votes.

Every model follows one API: `fit(votes, n_classes, gold=None, class_prior=None)`,
`predict_proba(votes) -> (N, K)`, `predict(votes) -> (N,)`, `report(votes) -> dict`.
`votes` is (N, M) int with -1 for abstain, or soft votes (N, M, K) float (rows of zeros = abstain).
`gold` is (N,) int with -1 where unknown; it anchors the estimates of the models that have any.
"""

from __future__ import annotations

from .auto import AutoLabelModel
from .base import LabelModel
from .dawid_skene import DawidSkene
from .majority import MajorityVote
from .snorkel_mc import MatrixCompletion
from .weighted import WeightedMajorityVote

DEFAULT_METHOD = "auto"  # chosen by benchmarks/labelmodels.py, see BENCHMARKS.md
FAMILY_AWARE = ("snorkel_mc", "auto")  # the models that take labeler families (`groups`)

LABEL_MODELS: dict[str, type[LabelModel]] = {
    "majority": MajorityVote,
    "weighted_majority": WeightedMajorityVote,
    "dawid_skene": DawidSkene,
    "snorkel_mc": MatrixCompletion,
    "auto": AutoLabelModel,
}


def make_label_model(name: str, **params) -> LabelModel:
    """Instantiate a registered label model by name."""
    if name not in LABEL_MODELS:
        raise ValueError(f"unknown aggregate.method '{name}'; available: {', '.join(sorted(LABEL_MODELS))}")
    return LABEL_MODELS[name](**params)


__all__ = ["DEFAULT_METHOD", "FAMILY_AWARE", "LABEL_MODELS", "AutoLabelModel", "DawidSkene", "LabelModel", "MajorityVote", "MatrixCompletion", "WeightedMajorityVote",
           "make_label_model"]
