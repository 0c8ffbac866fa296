"""Weighted majority vote with log-odds weights from estimated or gold accuracies."""

from __future__ import annotations

import numpy as np

from .base import LabelModel, class_counts, encode_votes, gold_agreement, one_coin_confusion, softmax_rows


def accuracy_weights(accuracy: np.ndarray, n_classes: int) -> np.ndarray:
    """(M,) log-odds weight log((K-1) a / (1 - a)) of labelers with accuracy a: 0 at chance, < 0 below."""
    a = np.clip(accuracy, 1e-3, 1 - 1e-3)
    return np.log((n_classes - 1) * a / (1 - a))


class WeightedMajorityVote(LabelModel):
    """Majority vote where labeler j's vote counts log((K-1) a_j / (1 - a_j)) (the one-coin posterior).

    Without gold, a_j is labeler j's agreement with the majority vote of the other labelers (leave-one-out,
    on the items where they vote), under a Beta prior of `smoothing` hits and `smoothing` misses. With
    `gold`, j's votes on gold items count `gold_weight` times each beside it. The class prior is the vote
    share (or `class_prior`). Learned: `accuracy_` (M,), `weights_` (M,), `confusion_` (M, K, K) (one-coin),
    `class_prior_` (K,).
    """

    def __init__(self, smoothing: float = 2.0, gold_weight: float = 5.0):
        self.smoothing = smoothing
        self.gold_weight = gold_weight

    def fit(self, votes, n_classes, gold=None, class_prior=None):
        x, gold, fixed = self._start_fit(votes, n_classes, gold, class_prior)
        k, m = self.n_classes_, self.n_labelers_
        counts = class_counts(x, k)
        self.class_prior_ = fixed if fixed is not None else (counts.sum(0) + 1) / (counts.sum() + k)
        g_hits, g_n = gold_agreement(x, gold, k) if gold is not None else (np.zeros(m), np.zeros(m))
        hits, tot = np.zeros(m), np.zeros(m)
        xc = x.tocsc()
        for j in range(m):
            own = xc[:, j * k:(j + 1) * k].toarray()  # (N, K)
            rest = counts - own
            ok = (own.sum(axis=1) > 0) & (rest.sum(axis=1) > 0)
            ref = np.eye(k)[rest[ok].argmax(axis=1)]
            hits[j], tot[j] = (own[ok] * ref).sum(), own[ok].sum()
        self.accuracy_ = ((hits + self.gold_weight * g_hits + self.smoothing)
                          / (tot + self.gold_weight * g_n + 2 * self.smoothing))
        self.weights_ = accuracy_weights(self.accuracy_, k)
        self.confusion_ = one_coin_confusion(self.accuracy_, k)
        return self

    def _scores(self, x) -> np.ndarray:
        k = self.n_classes_
        w = np.kron(self.weights_[:, None], np.eye(k)).astype(np.float32)
        return np.asarray(x @ w, dtype=float) + np.log(self.class_prior_)

    def predict_proba(self, votes):
        """(N, K) softmax of the weighted votes plus the log prior."""
        self._check_labelers(votes)
        return softmax_rows(self._scores(encode_votes(votes, self.n_classes_)))
