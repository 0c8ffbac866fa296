"""A Snorkel-class label model: matrix completion over the labelers' overlap statistics (Snorkel MeTaL)."""

from __future__ import annotations

import numpy as np
from scipy import optimize, sparse

from .base import (
    LabelModel,
    check_groups,
    check_temperature,
    class_counts,
    encode_votes,
    log_joint,
    softmax_rows,
)


class MatrixCompletion(LabelModel):
    """Estimates mu[(j, l), y] = P(labeler j votes l | true = y) without gold, as Snorkel MeTaL does.

    With O = X^T X / N the (M*K, M*K) vote co-occurrence matrix, conditionally independent labelers give
    O_ij = mu_i P mu_j^T for every pair of different labelers i != j (P = diag(class prior)), and the row sums
    of mu P are the vote rates diag(O). mu is fitted to those off-diagonal blocks and vote rates by bounded
    L-BFGS on least squares (scaled by the squared norm of the off-diagonal O), plus `l2` times the squared
    distance to its start, computed from the sparse
    off-diagonal O and K x K Gram matrices (never the dense (M*K)^2 product), so 164 labelers x 9 classes
    fit in about a second.

    `init`: "diagonal" (Snorkel's start: each labeler votes class l only for class l, right with probability
    `precision_init`) or "majority" (the labelers' confusion against the majority-vote shares).
    `prior`: "uniform" (Snorkel's default) or "em" (re-estimated by EM with mu fixed); a given
    `class_prior` is used as is. `abstain`: "rates" predicts as Snorkel does (vote rates, abstains left
    out), "model" also counts P(abstain | y) = 1 - sum_l mu[(j, l), y] as evidence, "ignore" uses the
    confusion normalized over votes. The defaults (l2 = 1, diagonal start, uniform prior, Snorkel's
    prediction) were chosen on the valid splits of the WRENCH and prompted sets, never on test labels.
    `penalty`: "absolute" (default) weighs every entry of mu - mu_start alike, "relative" divides labeler
    j's entries by its vote rate, so that l2 means the same for sparse labeling functions and dense
    annotators (on the valid splits it did not beat the default: benchmarks/labelmodels_valid.py gold0).

    `groups` (M,) names each labeler's family (labelers sharing a base model under several prompts, or any
    labelers known to err together): pairs inside a family are left out of the fit, like a labeler's pair with
    itself (they carry the family's shared errors, not evidence of accuracy), and each labeler's evidence in
    the posterior is divided by its family's size (n copies of one answer count once). None: every labeler is
    its own family. Off unless given: it helped on generated dense votes with known families
    (pipeline/labelmodels/synthetic.py) and hurt on LLMBar with its judge models as families, and families guessed
    from the votes did not help (figures: BENCHMARKS.md and benchmarks/HISTORY.md, label models).

    `temperature` divides every labeler's log-likelihood in the posterior: "auto" (default) picks it without
    gold by how well the posterior without each labeler predicts that labeler's votes
    (`heldout_vote_temperature`); labelers that err together (dense LLM labelers) otherwise make the posterior
    near-certain where it is often wrong. With the uniform prior the labels stay the same, only the
    confidence changes. Sparse labeling functions usually get T = 1; dense, correlated labelers a larger T
    (figures: benchmarks/HISTORY.md, label models). A number fixes it (1 = Snorkel's posterior).

    `gold` anchors the estimate: the gold items' vote counts are added to mu's columns with `gold_weight`
    times their count, against `prior_strength` pseudo-items per class for the unsupervised estimate; the
    class prior stays uniform (prior="em": EM starts from half the majority-vote shares, half the gold
    frequencies, with the gold items clamped). Learned: `mu_`
    (M*K, K), `confusion_` (M, K, K), `vote_rate_` (M, K, K), `abstain_rate_` (M, K), `class_prior_` (K,),
    `labeler_weight_` (M,) (1 / family size), `temperature_`.
    """

    def __init__(self, l2: float = 1.0, max_iter: int = 500, abstain: str = "rates", prior_strength: float = 50.0,
                 gold_weight: float = 1.0, clip: float = 1e-3, prior: str = "uniform", init: str = "diagonal",
                 precision_init: float = 0.7, penalty: str = "absolute", groups=None, temperature="auto"):
        if penalty not in {"absolute", "relative"}:
            raise ValueError(f"penalty must be 'absolute' or 'relative', got '{penalty}'")
        self.penalty = penalty
        self.groups = groups
        self.temperature = check_temperature(temperature)
        if abstain not in {"model", "ignore", "rates"}:
            raise ValueError(f"abstain must be 'model', 'ignore' or 'rates', got '{abstain}'")
        if prior not in {"em", "uniform"}:
            raise ValueError(f"prior must be 'em' or 'uniform', got '{prior}'")
        if init not in {"majority", "diagonal"}:
            raise ValueError(f"init must be 'majority' or 'diagonal', got '{init}'")
        self.prior = prior
        self.init = init
        self.precision_init = precision_init
        self.l2 = l2
        self.max_iter = max_iter
        self.abstain = abstain
        self.prior_strength = prior_strength
        self.gold_weight = gold_weight
        self.clip = clip

    def fit(self, votes, n_classes, gold=None, class_prior=None):
        x, gold, fixed = self._start_fit(votes, n_classes, gold, class_prior)
        (n, mk), k, m = x.shape, self.n_classes_, self.n_labelers_
        family = check_groups(self.groups, m)
        family = np.arange(m) if family is None else family
        self.labeler_weight_ = 1.0 / np.bincount(family)[family]
        xd = x.astype(np.float64)
        o = (xd.T @ xd).tocoo()
        off = family[o.row // k] != family[o.col // k]  # co-occurrence of labelers of different families only
        o_off = sparse.csr_matrix((o.data[off] / max(n, 1), (o.row[off], o.col[off])), shape=(mk, mk))
        o_sq = float((o_off.data ** 2).sum())
        d = np.asarray(xd.sum(axis=0)).ravel() / max(n, 1)
        # start: the confusion of each labeler against the majority-vote shares
        shares = class_counts(x, k)
        tot = shares.sum(axis=1, keepdims=True)
        post = np.where(tot > 0, shares / np.maximum(tot, 1e-12), 0.0)
        prior = fixed
        if prior is None and self.prior == "uniform":  # with gold too (a gold-mixed prior did worse on valid)
            prior = np.full(k, 1.0 / k)
        if prior is None:
            prior = (post.sum(axis=0) + 1.0) / (post.sum() + k)
            if gold is not None:  # half the majority-vote shares, half the gold frequencies
                g = np.bincount(gold[gold >= 0], minlength=k) + 1.0
                prior = 0.5 * prior + 0.5 * g / g.sum()
        mass = post.sum(axis=0) + 1e-9
        if self.init == "majority":
            mu0 = np.clip(np.asarray(xd.T @ post) / mass[None, :], 0, 1)
        else:  # Snorkel's start: labeler j votes l only for class l, right with probability precision_init
            mu0 = np.zeros((mk, k))
            rows = np.arange(mk)
            mu0[rows, rows % k] = np.clip(d * self.precision_init / prior[rows % k], 0, 1)
        scale = 1.0 / max(o_sq, 1e-12)
        n_families = int(family.max()) + 1
        # per-entry penalty weight: 1, or 1 / (labeler's vote rate)^2 so that l2 acts on relative deviations
        cov = d.reshape(m, k).sum(axis=1)
        pw = (np.ones(mk) if self.penalty == "absolute"
              else np.repeat(1.0 / np.maximum(cov, 1.0 / max(n, 1)) ** 2, k))[:, None]

        def loss(flat):
            # ||off-diagonal blocks of (O - mu P mu^T)||^2 + ||mu p - diag(O)||^2, without forming mu P mu^T
            mu = flat.reshape(mk, k)
            om = o_off @ mu  # (MK, K)
            pg = prior[:, None] * (mu.T @ mu)  # P G
            blocks = mu.reshape(m, k, k)
            gram = np.zeros((n_families, k, k))  # G_f = sum over the family's labelers of mu_j^T mu_j
            np.add.at(gram, family, np.einsum("mlk,mlh->mkh", blocks, blocks))
            pgf = prior[None, :, None] * gram  # P G_f: the blocks left out are the families' own
            fit = (o_sq - 2 * float((om * mu * prior).sum()) + float((pg * pg.T).sum())
                   - float(np.einsum("fab,fba->", pgf, pgf)))
            grad = -4 * om * prior + 4 * (mu @ (pg @ np.diag(prior)))
            grad -= 4 * np.einsum("mlk,mkh->mlh", blocks, pgf[family] * prior[None, None, :]).reshape(mk, k)
            rs = mu @ prior - d
            diff = mu - mu0
            f = scale * (fit + rs @ rs) + self.l2 * (pw * diff * diff).sum()
            g = scale * (grad + 2 * np.outer(rs, prior)) + 2 * self.l2 * pw * diff
            return f, g.ravel()

        res = optimize.minimize(loss, mu0.ravel(), jac=True, method="L-BFGS-B", bounds=optimize.Bounds(0.0, 1.0),
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
        if self.temperature == "auto":
            self.temperature_ = heldout_vote_temperature(x, np.log(self._evidence_rate()), prior, self.labeler_weight_)
        else:
            self.temperature_ = float(self.temperature)
        if fixed is None and self.prior == "em":  # EM on the class prior with the labelers fixed
            for _ in range(20):
                p = softmax_rows(self._log_joint(x))
                if gold is not None:
                    p[gold >= 0] = np.eye(k)[gold[gold >= 0]]
                self.class_prior_ = (p.sum(axis=0) + 1.0) / (n + k)
        self.n_iter_ = int(res.nit)
        return self

    def _evidence_rate(self) -> np.ndarray:
        """(M, K, K) the P(vote = l | true = k) the posterior multiplies: vote rates, or the confusion."""
        return self.confusion_ if self.abstain == "ignore" else self.vote_rate_

    def _log_joint(self, x) -> np.ndarray:
        w = self.labeler_weight_ / self.temperature_
        abstain = self.abstain_rate_ if self.abstain == "model" else None  # "rates": Snorkel's prediction
        return log_joint(x, self._evidence_rate(), self.class_prior_, abstain, weights=w)

    def predict_proba(self, votes):
        """(N, K) posterior P(true = k | votes)."""
        self._check_labelers(votes)
        return softmax_rows(self._log_joint(encode_votes(votes, self.n_classes_)))


TEMPERATURES = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0, 64.0)


def heldout_vote_temperature(x, log_rate: np.ndarray, prior: np.ndarray, weights: np.ndarray,
                             grid=TEMPERATURES, max_cells: int = 8_000_000, seed: int = 0) -> float:
    """Gold-free temperature T of the posterior softmax(log prior + sum_j w_j log P(v_j | y) / T).

    Labelers that err together make the product of their likelihoods far too confident. For each T in
    `grid`, the posterior without labeler j predicts j's votes (abstain as one more outcome) through j's
    vote distribution given the class, measured against that posterior on one half of the items and
    scored (log likelihood) on the other half, and the other way round; the T with the best sum over the
    labelers wins (ties: the smaller; the search stops two grid steps past the best). x (N, M*K) encoded
    votes; log_rate (M, K, K) log P(vote = l | true = k); prior (K,); weights (M,). A seeded sample of at
    most max_cells / (M * (K + 1)) items is used.
    """
    k = len(prior)
    m = x.shape[1] // k
    rng = np.random.default_rng(seed)
    order = rng.permutation(x.shape[0])[:max(2, max_cells // max(m * (k + 1), 1))]
    votes = sparse.csr_matrix(x[order]).toarray().reshape(len(order), m, k).transpose(1, 0, 2)  # (M, N, K)
    outcome = np.concatenate([votes, 1 - votes.sum(axis=2, keepdims=True)], axis=2)  # (M, N, K + 1), abstain last
    parts = np.einsum("mnl,mkl->mnk", votes, log_rate * np.asarray(weights)[:, None, None])  # (M, N, K)
    held_out = parts.sum(axis=0)[None] - parts  # every labeler's evidence but its own
    informative = np.ptp(outcome, axis=1).max(axis=1) > 0  # a labeler that always answers alike predicts nothing
    held_out, outcome = held_out[informative], outcome[informative]
    n = len(order)
    halves = (slice(0, n // 2), slice(n // 2, n))  # two random halves: the items were shuffled above
    scores = []
    for t in grid:  # the score rises to one peak: stop two steps past it
        z = np.log(prior) + held_out / t
        q = np.exp(z - z.max(axis=2, keepdims=True))
        q /= q.sum(axis=2, keepdims=True)
        score = 0.0
        for fit, held in (halves, halves[::-1]):
            rate = np.matmul(q[:, fit].transpose(0, 2, 1), outcome[:, fit]) + 0.5  # (M, K, K + 1)
            rate /= rate.sum(axis=2, keepdims=True)
            score += float((outcome[:, held] * np.log(np.matmul(q[:, held], rate))).sum())
        scores.append(score)
        if len(scores) - 1 - int(np.argmax(scores)) >= 2:
            break
    return float(grid[int(np.argmax(scores))])
