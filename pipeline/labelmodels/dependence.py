"""Gold-free diagnostics of a vote matrix: how dense it is, how far its labelers are from conditional independence."""

from __future__ import annotations

import numpy as np
from scipy import linalg

from .base import encode_votes

# chosen on generated dense votes (pipeline/labelmodels/synthetic.py); figures: BENCHMARKS.md, "Label models"
MIN_DENSITY = 0.5  # below it the votes are sparse labeling functions, whose coverage confounds the test
MIN_LABELERS = 4  # any three labelers' pairwise covariances fit rank one: the test needs four
MAX_DEPENDENCE = 0.05  # below it, labelers count as conditionally independent given the class


def vote_density(votes, n_classes: int) -> float:
    """Share of the (item, labeler) cells that hold a vote; votes (N, M) with -1 = abstain, or soft (N, M, K)."""
    votes = np.asarray(votes)
    if votes.ndim == 3:
        return float(votes.sum() / max(votes.shape[0] * votes.shape[1], 1))
    return float(np.count_nonzero(votes >= 0) / max(votes.size, 1))


def vote_dependence(votes, n_classes: int, max_items: int = 5000, n_iter: int = 200, tol: float = 1e-7,
                    seed: int = 0) -> float:
    """Share of the labelers' cross-covariance that conditionally independent labelers could not produce.

    If the labelers err independently given the true class, the covariance of labeler i's one-hot vote with
    labeler j's (i != j) is mu_i^T (diag(p) - p p^T) mu_j: the (M*K, M*K) cross-covariance has rank <= K - 1
    outside its diagonal blocks. This fits the best rank K - 1 matrix to those off-diagonal blocks (the
    diagonal blocks filled in by the fit, iterated) and returns the squared residual over the squared
    off-diagonal covariance, in [0, 1]: near 0 for independent labelers (plus sampling noise), larger when
    labelers share errors (one model under several prompts, items that fool many labelers alike). Meant for
    dense votes: abstains enter as all-zero rows, so sparse labeling functions' coverage patterns add
    structure of their own. A seeded sample of at most `max_items` items is used.
    """
    votes = np.asarray(votes)
    if len(votes) > max_items:
        votes = votes[np.sort(np.random.default_rng(seed).choice(len(votes), max_items, replace=False))]
    dense = encode_votes(votes, n_classes).toarray().astype(np.float64)
    mk = dense.shape[1]
    cov = np.cov(dense, rowvar=False)
    labeler = np.arange(mk) // n_classes
    off = labeler[:, None] != labeler[None, :]
    total = float((cov[off] ** 2).sum())
    if total <= 0:
        return 0.0
    rank = max(n_classes - 1, 1)
    filled, resid = np.where(off, cov, 0.0), np.inf
    for _ in range(n_iter):
        w, v = linalg.eigh(filled, subset_by_index=[mk - rank, mk - 1])  # the top `rank` eigenpairs
        low = (v * np.maximum(w, 0.0)) @ v.T  # the independent part is positive semi-definite
        last, resid = resid, float(((cov - low)[off] ** 2).sum()) / total
        if last - resid < tol:
            break
        filled = np.where(off, cov, low)
    return resid


def independence_diagnostics(votes, n_classes: int, min_density: float = MIN_DENSITY) -> dict:
    """{"density": `vote_density`, "dependence": `vote_dependence`}; the dependence only where it can be
    told: at least `min_density` of the cells voted and at least MIN_LABELERS labelers."""
    out = {"density": vote_density(votes, n_classes)}
    if out["density"] >= min_density and np.shape(votes)[1] >= MIN_LABELERS:
        out["dependence"] = vote_dependence(votes, n_classes)
    return out
