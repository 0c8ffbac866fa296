"""Gold-trained label models used by the `auto` model: a logistic-regression stacker and the best labeler."""

from __future__ import annotations

import numpy as np

from .base import LabelModel, encode_votes, gold_agreement


def _require_gold(gold: np.ndarray | None) -> np.ndarray:
    if gold is None:
        raise ValueError("this model is trained on gold labels: pass gold with at least one known label")
    return gold


class VoteStacker(LabelModel):
    """L2 logistic regression (strength 1/C) on the one-hot votes (N, M*K), fitted on the gold items only.

    Learns which labelers (and which of their votes) to trust, including ones worse than chance.
    `class_prior_` is the smoothed gold class frequency (or the given prior).
    """

    def __init__(self, C: float = 0.1):
        self.C = C

    def fit(self, votes, n_classes, gold=None, class_prior=None):
        from sklearn.linear_model import LogisticRegression

        x, gold, fixed = self._start_fit(votes, n_classes, gold, class_prior)
        gold, k = _require_gold(gold), self.n_classes_
        has = np.flatnonzero(gold >= 0)
        counts = np.bincount(gold[has], minlength=k) + 1.0
        self.class_prior_ = fixed if fixed is not None else counts / counts.sum()
        self.seen_ = np.unique(gold[has])
        self.model_ = None
        if len(self.seen_) > 1:
            self.model_ = LogisticRegression(C=self.C, max_iter=2000).fit(x[has], gold[has])
        return self

    def predict_proba(self, votes):
        """(N, K); classes absent from the gold items get a small probability."""
        self._check_labelers(votes)
        x = encode_votes(votes, self.n_classes_)
        out = np.zeros((x.shape[0], self.n_classes_))
        if self.model_ is None:
            out[:, self.seen_[0]] = 1.0
        else:
            out[:, self.model_.classes_] = self.model_.predict_proba(x)
        out = 0.99 * out + 0.01 / self.n_classes_
        return out / out.sum(axis=1, keepdims=True)


class BestLabeler(LabelModel):
    """The single labeler with the highest accuracy on the gold items it voted on (ties: more votes, then
    the lower index), smoothed by one hit and one miss; where it abstains, the gold prior's top class."""

    def fit(self, votes, n_classes, gold=None, class_prior=None):
        x, gold, fixed = self._start_fit(votes, n_classes, gold, class_prior)
        gold, k = _require_gold(gold), self.n_classes_
        hits, tot = gold_agreement(x, gold, k)
        self.accuracy_ = (hits + 1) / (tot + 2)
        self.labeler_ = int(np.lexsort((-tot, -self.accuracy_))[0])
        counts = np.bincount(gold[gold >= 0], minlength=k) + 1.0
        self.class_prior_ = fixed if fixed is not None else counts / counts.sum()
        return self

    def predict_proba(self, votes):
        """(N, K) the labeler's (soft) vote, the class prior where it abstains."""
        self._check_labelers(votes)
        k = self.n_classes_
        x = encode_votes(votes, k)
        own = x[:, self.labeler_ * k:(self.labeler_ + 1) * k].toarray().astype(float)
        tot = own.sum(axis=1, keepdims=True)
        return np.where(tot > 0, own / np.maximum(tot, 1e-12), self.class_prior_)

    def predict(self, votes):
        return self.predict_proba(votes).argmax(axis=1)
