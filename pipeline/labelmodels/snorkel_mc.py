"""A Snorkel-class label model: matrix completion over the labelers' overlap statistics (Snorkel MeTaL)."""

from __future__ import annotations

import numpy as np
from scipy import optimize

from .base import (
    LabelModel,
    check_class_prior,
    check_gold,
    check_n_classes,
    encode_votes,
    log_joint,
    softmax_rows,
)


class MatrixCompletion(LabelModel):
    """Estimates mu[(j, l), y] = P(labeler j votes l, true = y) / P(true = y) without gold, as in Snorkel MeTaL.

    With O = X^T X / N the (M*K, M*K) vote co-occurrence matrix, conditionally independent labelers give
    O_ij = mu_i P mu_j^T for every pair of different labelers i != j (P = diag(class prior)), and the row sums
    of mu P are the vote rates diag(O). mu is fitted to those off-diagonal blocks and vote rates by
    bounded L-BFGS (least squares, plus `l2` times the squared distance to its majority-vote start), then
    the class prior is re-estimated by EM with mu fixed (unless `class_prior` is given). Abstains count
    as evidence (P(abstain | y) = 1 - sum_l mu[(j, l), y]) when `abstain="model"`.

    `gold` anchors the estimate: the gold items' vote counts are added to mu's columns with `gold_weight`
    times their count, against `prior_strength` pseudo-items per class for the unsupervised estimate, and
    the gold labels inform the class prior. Learned: `mu_` (M*K, K), `confusion_` (M, K, K),
    `abstain_rate_` (M, K), `class_prior_` (K,).
    """

    def __init__(self, l2: float = 1e-4, max_iter: int = 500, abstain: str = "model", prior_strength: float = 50.0,
                 gold_weight: float = 1.0, clip: float = 1e-3):
        if abstain not in {"model", "ignore"}:
            raise ValueError(f"abstain must be 'model' or 'ignore', got '{abstain}'")
        self.l2 = l2
        self.max_iter = max_iter
        self.abstain = abstain
        self.prior_strength = prior_strength
        self.gold_weight = gold_weight
        self.clip = clip

    def fit(self, votes, n_classes, gold=None, class_prior=None):
        k = check_n_classes(n_classes)
        x = encode_votes(votes, k)
        n, mk = x.shape
        m = mk // k
        self.n_classes_, self.n_labelers_ = k, m
        gold = check_gold(gold, n, k)
        fixed = check_class_prior(class_prior, k)
        xd = x.astype(np.float64)
        o = np.asarray((xd.T @ xd).todense()) / max(n, 1)
        d = np.asarray(xd.sum(axis=0)).ravel() / max(n, 1)
        mask = 1.0 - np.kron(np.eye(m), np.ones((k, k)))
        # start: the confusion of each labeler against the majority-vote shares
        shares = np.asarray(x @ np.tile(np.eye(k, dtype=np.float32), (m, 1)), dtype=np.float64)
        tot = shares.sum(axis=1, keepdims=True)
        post = np.where(tot > 0, shares / np.maximum(tot, 1e-12), 0.0)
        prior = fixed
        if prior is None:
            prior = (post.sum(axis=0) + 1.0) / (post.sum() + k)
            if gold is not None:  # half the majority-vote shares, half the gold frequencies
                g = np.bincount(gold[gold >= 0], minlength=k) + 1.0
                prior = 0.5 * prior + 0.5 * g / g.sum()
        mass = post.sum(axis=0) + 1e-9
        mu0 = np.clip(np.asarray(xd.T @ post) / mass[None, :], 0, 1)
        scale = 1.0 / max(float(((o * mask) ** 2).sum()), 1e-12)

        def loss(flat):
            mu = flat.reshape(mk, k)
            r = mask * (o - (mu * prior) @ mu.T)
            rs = mu @ prior - d
            diff = mu - mu0
            f = (r * r).sum() + rs @ rs
            g = -4 * (r @ mu) * prior + 2 * np.outer(rs, prior)
            return scale * f + self.l2 * (diff * diff).sum(), (scale * g + 2 * self.l2 * diff).ravel()

        res = optimize.minimize(loss, mu0.ravel(), jac=True, method="L-BFGS-B", bounds=[(0.0, 1.0)] * (mk * k),
                                options={"maxiter": self.max_iter})
        mu = res.x.reshape(mk, k)
        if gold is not None:  # anchor with the gold items' vote counts
            has = gold >= 0
            onehot = np.eye(k)[gold[has]]
            gcounts = np.asarray(xd[np.flatnonzero(has)].T @ onehot) * self.gold_weight  # (M*K, K)
            gn = onehot.sum(axis=0) * self.gold_weight
            mu = (self.prior_strength * mu + gcounts) / (self.prior_strength + gn)[None, :]
        self.mu_ = mu
        vote = mu.reshape(m, k, k).transpose(0, 2, 1)  # (M, true, vote)
        sums = vote.sum(axis=2, keepdims=True)
        vote = np.where(sums > 1 - self.clip, vote / np.maximum(sums, 1e-12) * (1 - self.clip), vote)
        self.vote_rate_ = np.clip(vote, self.clip, 1.0)
        self.abstain_rate_ = np.clip(1 - vote.sum(axis=2), self.clip, 1.0)
        conf = self.vote_rate_ / self.vote_rate_.sum(axis=2, keepdims=True)
        self.confusion_ = conf
        self.class_prior_ = prior
        if fixed is None:  # EM on the class prior with the labelers fixed
            for _ in range(20):
                p = softmax_rows(self._log_joint(x))
                if gold is not None:
                    p[gold >= 0] = np.eye(k)[gold[gold >= 0]]
                self.class_prior_ = (p.sum(axis=0) + 1.0) / (n + k)
        self.n_iter_ = int(res.nit)
        return self

    def _log_joint(self, x) -> np.ndarray:
        if self.abstain == "model":
            return log_joint(x, self.vote_rate_, self.class_prior_, self.abstain_rate_)
        return log_joint(x, self.confusion_, self.class_prior_, None)

    def predict_proba(self, votes):
        """(N, K) posterior P(true = k | votes)."""
        self._check_labelers(votes)
        return softmax_rows(self._log_joint(encode_votes(votes, self.n_classes_)))
