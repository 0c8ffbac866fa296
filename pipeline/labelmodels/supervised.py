"""Gold-trained label models used by the `auto` model: a logistic-regression stacker and the best labeler."""

from __future__ import annotations

import numpy as np

from .base import LabelModel, encode_votes, gold_agreement, softmax_rows


def _require_gold(gold: np.ndarray | None) -> np.ndarray:
    if gold is None:
        raise ValueError("this model is trained on gold labels: pass gold with at least one known label")
    return gold


class VoteStacker(LabelModel):
    """L2 logistic regression (strength 1/C) on the one-hot votes (N, M*K), fitted on the gold items only.
    C = 1 was chosen on the valid splits (50 gold items: C = 0.1 0.467, C = 1 0.581 mean over 7 sets).

    Learns which labelers (and which of their votes) to trust, including ones worse than chance.
    `class_prior_` is the smoothed gold class frequency (or the given prior).
    """

    def __init__(self, C: float = 1.0):
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
    the lower index), smoothed by one hit and one miss. `predict_proba` gives its vote that smoothed accuracy
    (the rest spread evenly over the other classes); where it abstains, the gold class prior."""

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
        acc = max(float(self.accuracy_[self.labeler_]), 1.0 / k)  # right with its smoothed gold accuracy
        spread = own / np.maximum(tot, 1e-12) * acc + (1 - own / np.maximum(tot, 1e-12)) * (1 - acc) / (k - 1)
        return np.where(tot > 0, spread, self.class_prior_)

    def predict(self, votes):
        return self.predict_proba(votes).argmax(axis=1)


class PosteriorStacker(LabelModel):
    """The gold-free `base` model corrected on the gold items: logits = a * log P_base(y | votes) + b + x W,
    with x (N, M*K) the one-hot votes, fitted by L-BFGS on the gold items' log loss plus ||W||^2 / (2 C).

    W = 0, a = 1, b = 0 is the base model itself, so the penalty shrinks toward the gold-free posterior
    (a and b, a temperature and a class offset, are not penalized). `base` is fitted once without gold
    (its posterior uses no labels). The gold says nothing about classes absent from the gold items, so the
    correction is fitted among the present classes and those keep the base posterior's total probability;
    the absent classes keep theirs (with one class present the model is the base model). Learned:
    `base_model_`, `seen_` (the gold classes), `scale_` (a), `bias_` (K,), `weights_` (M*K, K) (0 for absent
    classes), `class_prior_` (K,) (the base prior, or the given one). C = 1 was chosen on the valid splits
    (50 gold items: C = 0.1 0.630, C = 1 0.641 mean over 7 sets).
    """

    def __init__(self, base: str = "snorkel_mc", C: float = 1.0, base_model: LabelModel | None = None):
        self.base = base
        self.C = C
        self.base_model = base_model  # an already fitted gold-free base model to reuse (cross-validation)

    def fit(self, votes, n_classes, gold=None, class_prior=None):
        from scipy import optimize

        from . import make_label_model

        x, gold, fixed = self._start_fit(votes, n_classes, gold, class_prior)
        gold, k, mk = _require_gold(gold), self.n_classes_, x.shape[1]
        self.base_model_ = self.base_model or make_label_model(self.base).fit(votes, k, class_prior=class_prior)
        has = np.flatnonzero(gold >= 0)
        self.seen_ = seen = np.unique(gold[has])  # the correction is among these classes only
        kp = len(seen)
        lg = np.log(np.clip(self.base_model_.predict_proba(np.asarray(votes)[has]), 1e-6, 1.0))[:, seen]
        xg = x[has].astype(np.float64)
        y = (gold[has][:, None] == seen[None, :]).astype(float)
        lam = 1.0 / self.C

        def loss(theta):
            a, b, w = theta[0], theta[1:kp + 1], theta[kp + 1:].reshape(mk, kp)
            z = a * lg + b + np.asarray(xg @ w)
            z -= z.max(axis=1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            r = np.exp(logp) - y  # d nll / d z
            f = -(y * logp).sum() + 0.5 * lam * (w * w).sum()
            g = np.concatenate([[(r * lg).sum()], r.sum(axis=0), (np.asarray(xg.T @ r) + lam * w).ravel()])
            return f, g

        self.scale_, self.bias_, self.weights_ = 1.0, np.zeros(k), np.zeros((mk, k))
        if kp > 1:
            theta0 = np.concatenate([[1.0], np.zeros(kp), np.zeros(mk * kp)])
            res = optimize.minimize(loss, theta0, jac=True, method="L-BFGS-B", options={"maxiter": 500})
            self.scale_ = float(res.x[0])
            self.bias_[seen] = res.x[1:kp + 1]
            self.weights_[:, seen] = res.x[kp + 1:].reshape(mk, kp)
        self.class_prior_ = fixed if fixed is not None else self.base_model_.class_prior_
        return self

    def predict_proba(self, votes):
        """(N, K) the corrected posterior: classes absent from the gold items keep the base posterior's
        probability, the corrected classes share the rest."""
        self._check_labelers(votes)
        x = encode_votes(votes, self.n_classes_)
        base = self.base_model_.predict_proba(votes)
        if len(self.seen_) < 2:
            return base
        z = self.scale_ * np.log(np.clip(base, 1e-6, 1.0)) + self.bias_ + np.asarray(x @ self.weights_)
        out = base.copy()
        out[:, self.seen_] = softmax_rows(z[:, self.seen_]) * base[:, self.seen_].sum(axis=1, keepdims=True)
        return out
