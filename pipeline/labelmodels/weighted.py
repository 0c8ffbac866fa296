"""Weighted majority vote with log-odds weights from estimated or gold accuracies."""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from .base import (
    LabelModel,
    check_class_prior,
    check_gold,
    check_n_classes,
    coverage,
    encode_votes,
    one_coin_confusion,
)


def accuracy_weights(accuracy: np.ndarray, n_classes: int) -> np.ndarray:
    """(M,) log-odds weight log((K-1) a / (1 - a)) of labelers with accuracy a: 0 at chance, < 0 below."""
    a = np.clip(accuracy, 1e-3, 1 - 1e-3)
    return np.log((n_classes - 1) * a / (1 - a))


def gold_agreement(x, gold: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(M,) soft count of votes equal to gold and (M,) count of votes, on the gold items."""
    has = gold >= 0
    onehot = np.eye(n_classes, dtype=np.float32)[gold[has]]
    sub = x[np.flatnonzero(has)]
    hits = np.asarray(sub.multiply(np.tile(onehot, (1, x.shape[1] // n_classes))).sum(axis=0))
    hits = hits.reshape(-1, n_classes).sum(axis=1)
    n = np.asarray(sub.sum(axis=0)).reshape(-1, n_classes).sum(axis=1)
    return hits.astype(float), n.astype(float)


class WeightedMajorityVote(LabelModel):
    """Majority vote where labeler j's vote counts log((K-1) a_j / (1 - a_j)) (the one-coin posterior).

    Accuracies a_j come from `n_rounds` of hard EM: agreement with the current weighted vote (starting
    from plain majority vote) under a Beta prior of `smoothing` hits and `smoothing` misses. With `gold`, the votes on gold items count `gold_weight`
    times each in the accuracy estimate. Learned: `accuracy_` (M,), `weights_` (M,), `class_prior_` (K,).
    """

    def __init__(self, n_rounds: int = 5, smoothing: float = 2.0, gold_weight: float = 5.0):
        self.n_rounds = n_rounds
        self.smoothing = smoothing
        self.gold_weight = gold_weight

    def fit(self, votes, n_classes, gold=None, class_prior=None):
        k = check_n_classes(n_classes)
        x = encode_votes(votes, k)
        n, m = x.shape[0], x.shape[1] // k
        self.n_classes_, self.n_labelers_ = k, m
        gold = check_gold(gold, n, k)
        fixed = check_class_prior(class_prior, k)
        tile = np.tile(np.eye(k, dtype=np.float32), (m, 1))
        counts = np.asarray(x @ tile, dtype=float)
        self.class_prior_ = fixed if fixed is not None else (counts.sum(0) + 1) / (counts.sum() + k)
        self.weights_ = np.ones(m)
        g_hits, g_n = (gold_agreement(x, gold, k) if gold is not None else (np.zeros(m), np.zeros(m)))
        unlabeled = np.ones(n, bool) if gold is None else gold < 0
        for _ in range(self.n_rounds):
            pred = self._scores(x).argmax(axis=1)
            hit = np.asarray(x[unlabeled].multiply(np.tile(np.eye(k, dtype=np.float32)[pred[unlabeled]], (1, m)))
                             .sum(axis=0)).reshape(m, k).sum(axis=1)
            tot = np.asarray(x[unlabeled].sum(axis=0)).reshape(m, k).sum(axis=1)
            self.accuracy_ = ((hit + self.gold_weight * g_hits + self.smoothing)
                              / (tot + self.gold_weight * g_n + 2 * self.smoothing))
            self.weights_ = accuracy_weights(self.accuracy_, k)
            if fixed is None:
                covered = coverage(x)
                prior = np.bincount(self._scores(x)[covered].argmax(axis=1), minlength=k) + 1.0
                self.class_prior_ = prior / prior.sum()
        self.confusion_ = one_coin_confusion(self.accuracy_, k)
        return self

    def _scores(self, x) -> np.ndarray:
        k = self.n_classes_
        w = np.kron(self.weights_[:, None], np.eye(k)).astype(np.float32)
        return np.asarray(x @ w, dtype=float) + np.log(self.class_prior_)

    def predict_proba(self, votes):
        """(N, K) softmax of the weighted votes plus the log prior."""
        self._check_labelers(votes)
        s = self._scores(encode_votes(votes, self.n_classes_))
        return np.exp(s - logsumexp(s, axis=1, keepdims=True))
