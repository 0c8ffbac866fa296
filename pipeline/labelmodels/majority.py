"""Majority vote."""

from __future__ import annotations

import numpy as np

from .base import LabelModel, check_class_prior, check_n_classes, vote_counts


class MajorityVote(LabelModel):
    """Each non-abstaining labeler gets one vote.

    `predict_proba` gives the vote shares; items no labeler covers get the class prior (estimated from
    the votes, or given). Hard (N, M) or soft (N, M, K) votes; `gold` is accepted and not used (majority
    vote has no parameters to anchor). `tie_break` decides `predict` on ties: "prior" (most frequent class among the
    tied ones), "random" (seeded), or "abstain" (-1).
    """

    def __init__(self, tie_break: str = "prior", seed: int = 0):
        if tie_break not in {"prior", "random", "abstain"}:
            raise ValueError(f"tie_break must be prior, random or abstain, got '{tie_break}'")
        self.tie_break = tie_break
        self.seed = seed

    def fit(self, votes, n_classes, gold=None, class_prior=None):
        n_classes = check_n_classes(n_classes)
        self.n_classes_ = n_classes
        self.n_labelers_ = np.asarray(votes).shape[1] if np.asarray(votes).ndim >= 2 else None
        counts = vote_counts(votes, n_classes)
        prior = check_class_prior(class_prior, n_classes)
        if prior is None:
            prior = counts.sum(axis=0) + 1.0
        self.class_prior_ = prior / prior.sum()
        return self

    def predict_proba(self, votes):
        self._check_labelers(votes)
        counts = vote_counts(votes, self.n_classes_)
        totals = counts.sum(axis=1, keepdims=True)
        return np.where(totals > 0, counts / np.maximum(totals, 1), self.class_prior_)

    def predict(self, votes):
        proba = self.predict_proba(votes)
        top = proba.max(axis=1, keepdims=True)
        tied = np.isclose(proba, top)
        if self.tie_break == "prior":
            return np.where(tied, self.class_prior_, -np.inf).argmax(axis=1)
        if self.tie_break == "random":
            rng = np.random.default_rng(self.seed)
            return np.where(tied, rng.random(proba.shape), -np.inf).argmax(axis=1)
        pred = proba.argmax(axis=1)
        return np.where(tied.sum(axis=1) > 1, -1, pred)
