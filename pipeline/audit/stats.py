"""The audit's math: agreement, soft accuracy / confusion, position bias, prediction-powered means.

Pure functions. votes: (N, M) int, -1 = abstain. proba: (N, K) rows summing to 1. gold: (N,) int, -1 = unknown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..calibration import fit_temperature, nll, scaled_proba
from ..labelmodels.base import encode_votes, posterior_confusion


def one_hot_votes(votes: np.ndarray, n_classes: int) -> np.ndarray:
    """(N, M, K) float one-hot of the votes; abstains are all-zero rows."""
    return (votes[:, :, None] == np.arange(n_classes)).astype(float)


def abstain_rate(votes: np.ndarray) -> np.ndarray:
    """(M,) fraction of items each annotator abstained on."""
    return (votes < 0).mean(axis=0)


def cohen_kappa_matrix(votes: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(M, M) Cohen's kappa of each pair on the items both labeled, and (M, M) the number of such items.

    Kappa is NaN where a pair shares no item or chance agreement is 1.
    """
    oh = one_hot_votes(votes, n_classes)
    joint = np.einsum("nak,nbl->abkl", oh, oh)  # (M, M, K, K) counts
    total = joint.sum(axis=(2, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        p = joint / total[:, :, None, None]
        po = np.trace(p, axis1=2, axis2=3)
        pe = np.einsum("abk,abk->ab", p.sum(axis=3), p.sum(axis=2))
        kappa = (po - pe) / (1.0 - pe)
    kappa[(total == 0) | np.isclose(pe, 1.0)] = np.nan
    return kappa, total.astype(int)


def fleiss_kappa(votes: np.ndarray, n_classes: int) -> float:
    """Fleiss' kappa over items with at least two votes (varying number of raters allowed)."""
    counts = one_hot_votes(votes, n_classes).sum(axis=1)  # (N, K)
    n = counts.sum(axis=1)
    keep = n >= 2
    if not keep.any():
        return float("nan")
    counts, n = counts[keep], n[keep]
    p_i = ((counts**2).sum(axis=1) - n) / (n * (n - 1))
    p_bar = float(p_i.mean())
    p_k = counts.sum(axis=0) / n.sum()
    p_e = float((p_k**2).sum())
    return float("nan") if np.isclose(p_e, 1.0) else (p_bar - p_e) / (1.0 - p_e)


def krippendorff_alpha(votes: np.ndarray) -> float:
    """Krippendorff's alpha (nominal) over all annotators, abstains as missing (the `krippendorff` package)."""
    import krippendorff

    data = np.where(votes >= 0, votes, np.nan).T.astype(float)  # (M, N)
    if np.unique(data[~np.isnan(data)]).size < 2:
        return float("nan")
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))


def soft_accuracy(votes: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """(N, M) probability each vote is correct under `proba` (P(true = vote)); NaN where abstained."""
    n = np.arange(len(votes))[:, None]
    q = proba[n, np.maximum(votes, 0)]
    return np.where(votes >= 0, q, np.nan)


def soft_confusion(votes: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """(M, K, K) row-normalized P(vote = l | true = k), true classes weighted by `proba` (N, K); NaN rows where
    no vote falls (the label models' `posterior_confusion`, normalized)."""
    k = proba.shape[1]
    conf = posterior_confusion(encode_votes(votes, k), proba, k)
    rows = conf.sum(axis=2, keepdims=True)
    return np.divide(conf, rows, out=np.full_like(conf, np.nan), where=rows > 0)


def majority_labels(votes: np.ndarray, n_classes: int, proba: np.ndarray | None = None) -> np.ndarray:
    """(N,) the most voted class (ties broken by `proba`, else the lowest index); -1 where nobody voted."""
    counts = one_hot_votes(votes, n_classes).sum(axis=1)
    score = counts + (1e-6 * proba if proba is not None else 0.0)
    return np.where(counts.sum(axis=1) > 0, score.argmax(axis=1), -1)


@dataclass
class Interval:
    """A point estimate with a two-sided confidence interval."""

    estimate: float
    low: float
    high: float

    @property
    def width(self) -> float:
        return self.high - self.low


def ppi_mean(pred_all: np.ndarray, labeled: np.ndarray, y: np.ndarray, pred_labeled: np.ndarray | None = None,
             confidence: float = 0.95, tune: bool = True, bounds: tuple[float, float] | None = None) -> Interval:
    """Prediction-powered estimate of the finite-population mean of y over all N items.

    pred_all: (N,) predictions f(x_i) for every item. labeled: (N,) bool, a simple random sample of the
    items whose true y is known. y: (N,) true values (read only where `labeled`). pred_labeled: (N,)
    predictions to use on the labeled items (cross-fitted, i.e. from a model that did not see their
    y); defaults to pred_all. The estimate is the known y on the labeled items plus, on the others,
    lam * f corrected by the mean residual y - lam * f on the labeled ones. With `tune`, lam is the
    variance-minimizing Cov(y, f) / Var(f) on the labeled items (power tuning: a useless or misleading f
    falls back towards the gold-only mean); else lam = 1 (plain PPI). The interval uses the residual
    variance with the finite-population correction (1 - n/N) and a t quantile (n - 1 df, n - 2 tuned);
    it stays valid however biased f is, and is narrow when f predicts y well. `bounds` (e.g. (0, 1) for a
    proportion) clips the estimate and the interval, which keeps the coverage.
    """
    pred_all = np.asarray(pred_all, dtype=float)
    labeled = np.asarray(labeled, dtype=bool)
    n_total, n = len(pred_all), int(labeled.sum())
    if n_total == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    if n < 2 + tune:
        raise ValueError(f"prediction-powered inference needs at least {2 + tune} labeled items, got {n}")
    f_lab = (pred_all if pred_labeled is None else np.asarray(pred_labeled, dtype=float))[labeled]
    y_lab = np.asarray(y, dtype=float)[labeled]
    lam = 1.0
    if tune:
        var_f = f_lab.var(ddof=1)
        lam = float(np.cov(y_lab, f_lab, ddof=1)[0, 1] / var_f) if var_f > 1e-12 else 0.0
    resid = y_lab - lam * f_lab
    unlabeled_sum = lam * pred_all[~labeled].sum() + (n_total - n) * resid.mean()
    estimate = (y_lab.sum() + unlabeled_sum) / n_total
    se = np.sqrt(max(0.0, 1.0 - n / n_total) * resid.var(ddof=1 + tune) / n)
    half = stats.t.ppf(0.5 + confidence / 2, df=n - 1 - tune) * se
    lo, hi = bounds if bounds is not None else (-np.inf, np.inf)
    return Interval(*(float(np.clip(v, lo, hi)) for v in (estimate, estimate - half, estimate + half)))


def shrink_toward_mean(d: np.ndarray, var: np.ndarray) -> np.ndarray:
    """Empirical-Bayes (James-Stein) shrinkage of M noisy estimates d (M,) with sampling variances var (M,).

    Model d_j ~ N(theta_j, var_j), theta_j ~ N(mu, tau^2); mu and tau^2 by the method of moments. Returns the
    posterior means (M,): d_j pulled toward mu by var_j / (var_j + tau^2). Estimates with var_j = 0 stay put.
    """
    d, var = np.asarray(d, dtype=float), np.asarray(var, dtype=float)
    if len(d) < 3:
        return d.copy()
    w_mu = 1.0 / np.maximum(var, 1e-12)
    mu = float(np.sum(w_mu * d) / np.sum(w_mu)) if np.all(var > 0) else float(d.mean())
    tau2 = max(0.0, float(d.var(ddof=1) - var.mean()))
    keep = np.where(var > 0, tau2 / (tau2 + np.maximum(var, 1e-12)), 1.0)
    return mu + keep * (d - mu)


def apply_temperature(proba: np.ndarray, t: float) -> np.ndarray:
    """(N, K) rows of `proba` (N, K) raised to the power t and renormalized: softmax(t * log p), i.e.
    `calibration.scaled_proba` of the log-probabilities at temperature 1 / t.

    t > 1 sharpens, t = 1 leaves the rows as they are; for two classes it multiplies the logit by t.
    """
    return scaled_proba(np.log(np.clip(proba, 1e-12, 1.0)), 1.0 / t)


def sharpening_temperature(proba: np.ndarray, y: np.ndarray, t_max: float = 10.0) -> float:
    """The temperature t in [1, t_max] that maximizes the likelihood of labels y (n,) under
    `apply_temperature(proba, t)` (proba: (n, K), held-out predictions): `calibration.fit_temperature` of the
    log-probabilities, searched within [1 / t_max, 1].

    Sharpen-only: an L2-regularized logistic regression shrinks its logits toward zero, so its own
    miscalibration is underconfidence; a fitted t below 1 on a few held-out rows mostly reflects the noise
    of the fold models (regression dilution) and is not applied. Returns 1.0 with fewer than 2 rows.
    """
    proba, y = np.asarray(proba, dtype=float), np.asarray(y, dtype=int)
    if len(y) < 2:
        return 1.0
    logp = np.log(np.clip(proba, 1e-12, 1.0))
    t = 1.0 / fit_temperature(logp, y, bounds=(1.0 / t_max, 1.0))
    return 1.0 if nll(logp, y) <= nll(logp, y, 1.0 / t) else t


def classical_mean(labeled: np.ndarray, y: np.ndarray, confidence: float = 0.95) -> Interval:
    """Share of y (0/1) over all N items from the labeled sample alone (finite-population t interval)."""
    labeled = np.asarray(labeled, dtype=bool)
    return ppi_mean(np.zeros(len(labeled)), labeled, y, confidence=confidence, tune=False, bounds=(0.0, 1.0))


def naive_proportion(indicator: np.ndarray, confidence: float = 0.95) -> Interval:
    """Share of 1s in `indicator` (N,) with the Wald interval, as if the labels were true."""
    x = np.asarray(indicator, dtype=float)
    p = float(x.mean())
    half = stats.norm.ppf(0.5 + confidence / 2) * np.sqrt(p * (1 - p) / len(x))
    return Interval(p, max(0.0, p - half), min(1.0, p + half))


ORDER_SEPARATORS = "/_-.:"


def order_pairs(annotators: list[str], orders: tuple[str, str] = ("ab", "ba")) -> list[tuple[str, int, int]]:
    """Pairs of annotators that are one judge seen in both presentation orders.

    A name ending in a separator plus orders[0] (e.g. `gpt4/vanilla/ab`) pairs with the same name ending in
    orders[1]. Returns (base name, index of the first-order annotator, index of the swapped one).
    """
    pattern = re.compile(rf"^(.*)([{re.escape(ORDER_SEPARATORS)}])({re.escape(orders[0])}|{re.escape(orders[1])})$")
    found: dict[tuple[str, str], dict[str, int]] = {}
    for j, name in enumerate(annotators):
        m = pattern.match(name)
        if m:
            found.setdefault((m.group(1), m.group(2)), {})[m.group(3)] = j
    return [(base, d[orders[0]], d[orders[1]]) for (base, _), d in found.items() if len(d) == 2]


def position_bias(first: np.ndarray, swapped: np.ndarray, n_classes: int) -> dict:
    """How often a judge's verdict flips when the two outputs are swapped.

    first, swapped: (N,) verdicts in the original and the swapped order, both mapped back to the original
    numbering (-1 = abstain). For two classes, class 0 is the output shown first in the original order
    and second in the swapped one, so a flip (0, 1) means the judge picked whichever came first both
    times. Returns n (items seen in both orders), flip_rate, and for two classes prefers_first (share of
    flips that favour the first position) and consistency = 1 - flip_rate.
    """
    both = (first >= 0) & (swapped >= 0)
    n = int(both.sum())
    flips = both & (first != swapped)
    out = {"n": n, "flip_rate": float(flips.sum() / n) if n else float("nan"),
           "consistency": float(1 - flips.sum() / n) if n else float("nan")}
    if n_classes == 2:
        first_pos = int((flips & (first == 0) & (swapped == 1)).sum())
        out["prefers_first"] = float(first_pos / flips.sum()) if flips.any() else float("nan")
    return out
