"""Shared pieces of the label models."""

from __future__ import annotations

import numpy as np


def check_votes(votes: np.ndarray, n_classes: int) -> np.ndarray:
    """Validate hard votes (N, M) int in [-1, K). Returns them as int64."""
    votes = np.asarray(votes)
    if votes.ndim != 2:
        raise ValueError(f"votes must be a 2-d (items x labelers) array, got shape {votes.shape}")
    if votes.size and not np.issubdtype(votes.dtype, np.integer):
        if not np.all(np.equal(np.mod(votes, 1), 0)):
            raise ValueError("votes must be integer class indices (-1 = abstain)")
    votes = votes.astype(np.int64)
    bad = (votes < -1) | (votes >= n_classes)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(f"vote {votes[i, j]} of labeler {j} on item {i} is outside the class range "
                         f"[0, {n_classes}) (use -1 for abstain)")
    return votes


def vote_counts(votes: np.ndarray, n_classes: int, weights: np.ndarray | None = None) -> np.ndarray:
    """(N, K) (weighted) count of votes per class; abstains (-1) are ignored."""
    n, m = votes.shape
    weights = np.ones(m) if weights is None else np.asarray(weights, dtype=float)
    counts = np.zeros((n, n_classes))
    for j in range(m):
        voted = votes[:, j] >= 0
        np.add.at(counts, (np.nonzero(voted)[0], votes[voted, j]), weights[j])
    return counts


def confusion_from_labels(votes: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(M, K, K) row-normalized confusion P(vote = l | true = k) of each labeler, on non-abstain items."""
    m = votes.shape[1]
    conf = np.zeros((m, n_classes, n_classes))
    for j in range(m):
        ok = (votes[:, j] >= 0) & (labels >= 0)
        np.add.at(conf[j], (labels[ok], votes[ok, j]), 1.0)
    totals = conf.sum(axis=2, keepdims=True)
    return np.divide(conf, totals, out=np.zeros_like(conf), where=totals > 0)


class LabelModel:
    """Base class. Subclasses implement `fit` and `predict_proba`; learned state ends in `_`."""

    n_classes_: int
    class_prior_: np.ndarray

    def fit(self, votes: np.ndarray, n_classes: int, gold: np.ndarray | None = None,
            class_prior: np.ndarray | None = None) -> LabelModel:
        raise NotImplementedError

    def predict_proba(self, votes: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict(self, votes: np.ndarray) -> np.ndarray:
        """(N,) the most probable class; items no labeler covers get the prior's most frequent class."""
        return self.predict_proba(votes).argmax(axis=1)

    def report(self, votes: np.ndarray) -> dict:
        """Per-labeler estimated accuracy and confusion, measured against this model's own predictions."""
        votes = check_votes(votes, self.n_classes_)
        pred = self.predict(votes)
        conf = confusion_from_labels(votes, pred, self.n_classes_)
        acc = [float(np.mean(votes[votes[:, j] >= 0, j] == pred[votes[:, j] >= 0])) if (votes[:, j] >= 0).any()
               else None for j in range(votes.shape[1])]
        return {"class_prior": self.class_prior_.tolist(), "labeler_accuracy": acc,
                "labeler_confusion": conf.tolist()}
