"""Neighbours in embedding space: sentence embeddings (embed), a FAISS index and kNN label distributions
(index), and SiDyP's neighbourhood inputs - candidate sets, clean pool, training dynamics (dynamics)."""

from __future__ import annotations

from .dynamics import (
    CandidateSets,
    TrainingDynamics,
    candidate_sets,
    clean_by_confidence,
    clean_by_dynamics,
    training_dynamics,
)
from .embed import embed_texts
from .index import EXACT_INDEX_MAX, INDEX_KINDS, build_index, choose_index_kind, knn_label_distribution

__all__ = ["EXACT_INDEX_MAX", "INDEX_KINDS", "CandidateSets", "TrainingDynamics", "build_index", "candidate_sets",
           "choose_index_kind", "clean_by_confidence", "clean_by_dynamics", "embed_texts", "knn_label_distribution",
           "training_dynamics"]
