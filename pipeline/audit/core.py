"""Run an audit: label model posteriors, per-annotator reliability, flagged items, corrected estimates."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..crossfit import cross_fit, fold_parts
from ..labelmodels import LABEL_MODELS, make_label_model
from ..labelmodels.dependence import independence_diagnostics
from . import stats
from .load import AuditData

MIN_GOLD = 3  # fewest gold items for a corrected (prediction-powered) estimate
STACK_MIN_GOLD = 20  # from this many gold items on, a gold-trained stacker gives the posterior


def default_method() -> str:
    """The label model the audit uses by default: Dawid-Skene when available, else majority vote."""
    return "dawid_skene" if "dawid_skene" in LABEL_MODELS else "majority"


@dataclass
class AuditResult:
    """Everything an audit found. Tables are pandas frames; arrays follow the module conventions."""

    data: AuditData
    method: str
    proba: np.ndarray  # (N, K) label-model posterior, fitted with all gold
    proba_nogold: np.ndarray  # (N, K) posterior fitted without gold
    proba_oof: np.ndarray  # (N, K) cross-fitted posterior on gold items (NaN elsewhere)
    annotators: pd.DataFrame
    confusion_model: np.ndarray  # (M, K, K) estimated without gold
    confusion_gold: np.ndarray  # (M, K, K) measured on gold items (NaN rows where none)
    kappa: np.ndarray  # (M, M)
    agreement: dict
    position_bias: pd.DataFrame
    prevalence: pd.DataFrame
    flagged: pd.DataFrame
    reliability: pd.DataFrame
    summary: dict = field(default_factory=dict)


def _fit(method: str, votes: np.ndarray, n_classes: int, gold: np.ndarray | None, seed: int) -> np.ndarray:
    model = make_label_model(method, **({"seed": seed} if _takes_seed(method) else {}))
    model.fit(votes, n_classes, gold=gold)
    return np.asarray(model.predict_proba(votes), dtype=float)


def _takes_seed(method: str) -> bool:
    import inspect

    return "seed" in inspect.signature(LABEL_MODELS[method].__init__).parameters


def cross_fitted_proba(method: str, votes: np.ndarray, gold: np.ndarray, n_classes: int, folds: int = 5,
                       seed: int = 0) -> np.ndarray:
    """(N, K) posterior on each gold item from a label model fitted without that item's gold (K-fold).

    Rows of non-gold items are NaN. Folds are a seeded random split of the gold items.
    """
    def fit_predict(train: np.ndarray, part: np.ndarray) -> np.ndarray:
        masked = gold.copy()
        masked[part] = -1
        return _fit(method, votes, n_classes, masked if (masked >= 0).any() else None, seed)[part]

    return cross_fit(fit_predict, fold_parts(np.flatnonzero(gold >= 0), folds, seed), len(gold))


def stack_features(votes: np.ndarray, base_proba: np.ndarray) -> np.ndarray:
    """(N, M*K + K) features of the stacker: one-hot votes (abstain = zeros) and log label-model posterior."""
    oh = stats.one_hot_votes(votes, base_proba.shape[1]).reshape(len(votes), -1)
    return np.concatenate([oh, np.log(np.clip(base_proba, 1e-4, 1.0))], axis=1)


def stacked_proba(votes: np.ndarray, base_proba: np.ndarray, gold: np.ndarray, folds: int = 5, seed: int = 0,
                  c: float = 0.1, sharpen: bool = True) -> tuple[np.ndarray, np.ndarray, float]:
    """A posterior learned from the gold items: L2 logistic regression on the votes and the label model's
    gold-free posterior (N, K). Returns (N, K) from the model fitted on all gold items, (N, K) cross-fitted
    rows for the gold items (each from a model that did not see it; NaN elsewhere), and the temperature
    applied to the first. Classes absent from a training fold get probability 0 there (smoothed).

    With `sharpen`, the L2 penalty's underconfidence is undone by a sharpen-only temperature
    (`stats.sharpening_temperature`) fitted on the cross-fitted rows; each fold's cross-fitted rows get the
    temperature fitted on the other folds' rows, so they stay held out.
    """
    from sklearn.linear_model import LogisticRegression

    n_classes = base_proba.shape[1]
    x = stack_features(votes, base_proba)

    def fit_predict(train: np.ndarray) -> np.ndarray:
        seen = np.unique(gold[train])
        out = np.zeros((len(x), n_classes))
        if len(seen) == 1:
            out[:, seen[0]] = 1.0
        else:
            model = LogisticRegression(C=c, max_iter=2000).fit(x[train], gold[train])
            out[:, model.classes_] = model.predict_proba(x)
        out = 0.995 * out + 0.005 / n_classes
        return out / out.sum(axis=1, keepdims=True)

    labeled = np.flatnonzero(gold >= 0)
    full = fit_predict(labeled)
    parts = fold_parts(labeled, folds, seed)
    oof = cross_fit(lambda train, part: fit_predict(np.sort(train))[part], parts, len(x))
    if not sharpen:
        return full, oof, 1.0
    t = stats.sharpening_temperature(oof[labeled], gold[labeled])

    def sharpened(train: np.ndarray, part: np.ndarray) -> np.ndarray:
        train = np.sort(train)
        return stats.apply_temperature(oof[part], stats.sharpening_temperature(oof[train], gold[train]))

    return stats.apply_temperature(full, t), cross_fit(sharpened, parts, len(x)), t


def gold_posterior(method: str, votes: np.ndarray, proba_nogold: np.ndarray, gold: np.ndarray, folds: int = 5,
                   seed: int = 0, stack: bool = True, sharpen: bool = True) -> tuple[np.ndarray, np.ndarray, str]:
    """The posterior that uses the gold items: (N, K) fitted with all of them, (N, K) cross-fitted rows on
    the gold items (NaN elsewhere), and its name. The stacker from STACK_MIN_GOLD gold items on (with
    `stack`, sharpened by a temperature with `sharpen`), else the label model fitted with gold; without gold,
    the gold-free posterior."""
    n_gold, k = int((gold >= 0).sum()), proba_nogold.shape[1]
    if stack and n_gold >= STACK_MIN_GOLD:
        full, oof, t = stacked_proba(votes, proba_nogold, gold, folds, seed, sharpen=sharpen)
        return full, oof, f"{method} + gold-trained stacker (temperature {t:.2f})"
    full = _fit(method, votes, k, gold, seed) if n_gold else proba_nogold
    oof = cross_fitted_proba(method, votes, gold, k, folds, seed) if n_gold >= MIN_GOLD else np.full_like(full, np.nan)
    return full, oof, method


def label_prevalence(proba: np.ndarray, proba_oof: np.ndarray, gold: np.ndarray, hard: np.ndarray,
                     confidence: float = 0.95, tune: bool = True) -> list[dict]:
    """Per class: naive share of the hard labels (Wald), and with gold the PPI and gold-only intervals."""
    labeled = gold >= 0
    rows = []
    for k in range(proba.shape[1]):
        naive = stats.naive_proportion(hard == k, confidence)
        row = {"class_index": k, "naive": naive.estimate, "naive_low": naive.low, "naive_high": naive.high}
        if labeled.sum() >= MIN_GOLD:
            y = (gold == k).astype(float)
            f_lab = np.where(labeled, proba_oof[:, k], proba[:, k])
            ppi = stats.ppi_mean(proba[:, k], labeled, y, f_lab, confidence, tune, (0.0, 1.0))
            cls = stats.classical_mean(labeled, y, confidence)
            row |= {"corrected": ppi.estimate, "corrected_low": ppi.low, "corrected_high": ppi.high,
                    "gold_only": cls.estimate, "gold_only_low": cls.low, "gold_only_high": cls.high}
        rows.append(row)
    return rows


def corrected_accuracy(votes: np.ndarray, proba: np.ndarray, proba_oof: np.ndarray, gold: np.ndarray,
                       confidence: float = 0.95, tune: bool = True, shrink: bool = True) -> list[stats.Interval | None]:
    """Per annotator (M,): accuracy over the items it labeled, prediction-powered from the gold subset.

    Uses the posterior probability that each vote is right as the prediction (cross-fitted on gold items).
    The interval is each annotator's own prediction-powered interval. With `shrink`, the point estimate is
    the exact correctness on its gold items plus, on its other items, the posterior's estimate plus its
    gold-measured correction, the corrections of all annotators shrunk toward their common mean (empirical
    Bayes: they share the posterior's miscalibration), kept inside the interval. None where the annotator
    labeled fewer than MIN_GOLD gold items.
    """
    q_all = stats.soft_accuracy(votes, proba)
    q_oof = stats.soft_accuracy(votes, np.nan_to_num(proba_oof))
    out: list[stats.Interval | None] = []
    known, rest, n_gold, n_rest, corr, var = [], [], [], [], [], []  # per annotator with enough gold
    for j in range(votes.shape[1]):
        voted = votes[:, j] >= 0
        labeled = (gold >= 0)[voted]
        if labeled.sum() < MIN_GOLD:
            out.append(None)
            continue
        correct = (votes[voted, j] == gold[voted]).astype(float)
        out.append(stats.ppi_mean(q_all[voted, j], labeled, correct, np.where(labeled, q_oof[voted, j], 0.0),
                                  confidence, tune, (0.0, 1.0)))
        resid = correct[labeled] - q_oof[voted, j][labeled]
        known.append(correct[labeled].sum())
        n_gold.append(labeled.sum())
        rest.append(q_all[voted, j][~labeled].sum())
        n_rest.append((~labeled).sum())
        corr.append(resid.mean())
        var.append(max(0.0, 1.0 - labeled.sum() / voted.sum()) * resid.var(ddof=1) / labeled.sum())
    if shrink and len(corr) >= 3:
        # gold items count with their exact correctness; only the other items are estimated
        known, rest, n_rest = np.array(known), np.array(rest), np.array(n_rest, dtype=float)
        shrunk = stats.shrink_toward_mean(np.array(corr), np.array(var))
        n_voted = n_rest + np.array(n_gold, dtype=float)
        est = iter(np.clip((known + rest + n_rest * shrunk) / n_voted, 0.0, 1.0))
        out = [None if iv is None else
               stats.Interval(float(np.clip(next(est), iv.low, iv.high)), iv.low, iv.high) for iv in out]
    return out


def reliability_table(proba: np.ndarray, gold: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Reliability diagram bins of the posterior's top-class confidence on gold items."""
    labeled = (gold >= 0) & ~np.isnan(proba).any(axis=1)
    if not labeled.any():
        return pd.DataFrame(columns=["bin_low", "bin_high", "n", "confidence", "accuracy"])
    p, y = proba[labeled], gold[labeled]
    conf, correct = p.max(axis=1), (p.argmax(axis=1) == y)
    low = 1.0 / proba.shape[1]
    edges = np.linspace(low, 1.0, n_bins + 1)
    bins = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        m = bins == b
        rows.append({"bin_low": edges[b], "bin_high": edges[b + 1], "n": int(m.sum()),
                     "confidence": float(conf[m].mean()) if m.any() else np.nan,
                     "accuracy": float(correct[m].mean()) if m.any() else np.nan})
    return pd.DataFrame(rows)


def flag_items(data: AuditData, proba: np.ndarray, knn: np.ndarray | None, top: int = 100) -> pd.DataFrame:
    """The items whose majority label is most likely wrong, ranked, with the evidence.

    Score = 1 - posterior of the majority label (1 when gold contradicts the majority, and items whose
    gold agrees with it are never flagged); ties are broken by how much the neighbours disagree.
    """
    votes, gold, k = data.votes, data.gold, len(data.classes)
    majority = stats.majority_labels(votes, k, proba)
    counts = stats.one_hot_votes(votes, k).sum(axis=1)
    n_votes = counts.sum(axis=1)
    voted = majority >= 0
    rows_n = np.arange(len(votes))
    share = np.where(voted, counts[rows_n, np.maximum(majority, 0)] / np.maximum(n_votes, 1), np.nan)
    post_major = np.where(voted, proba[rows_n, np.maximum(majority, 0)], np.nan)
    score = 1.0 - post_major
    known = gold >= 0
    score = np.where(known, np.where(gold != majority, 1.0, 0.0), score)
    nbr_dis = 1.0 - knn[rows_n, np.maximum(majority, 0)] if knn is not None else np.zeros(len(votes))
    order = np.lexsort((-nbr_dis, -np.nan_to_num(score, nan=-1)))
    order = [i for i in order if voted[i] and score[i] > 1e-9][:top]
    cls = np.array(data.classes, dtype=object)
    frame = pd.DataFrame({
        "rank": np.arange(1, len(order) + 1),
        "item": [data.items[i] for i in order],
        "score": score[order],
        "majority_label": cls[majority[order]],
        "majority_share": share[order],
        "disagreement": 1.0 - share[order],
        "n_votes": n_votes[order].astype(int),
        "model_label": cls[proba[order].argmax(axis=1)],
        "posterior_of_majority": post_major[order],
        "posterior_of_model_label": proba[order].max(axis=1),
        "gold": [data.classes[gold[i]] if gold[i] >= 0 else "" for i in order],
        "votes": ["; ".join(f"{c}:{int(counts[i, j])}" for j, c in enumerate(data.classes) if counts[i, j])
                  for i in order],
    })
    if knn is not None:
        frame["neighbour_label"] = cls[knn[order].argmax(axis=1)]
        frame["neighbour_share_of_majority"] = knn[order, majority[order]]
    if data.text is not None:
        frame["text"] = [data.text[i][:300] for i in order]
    return frame


def shared_errors(votes: np.ndarray, n_classes: int) -> dict:
    """`vote_density` and `conditional_dependence` (`vote_dependence`; NaN where it cannot tell: sparse votes,
    fewer than 4 annotators): how far the annotators are from erring independently given the class, the
    assumption behind Dawid-Skene's estimates."""
    found = independence_diagnostics(votes, n_classes)
    return {"vote_density": found["density"], "conditional_dependence": found.get("dependence", float("nan"))}


def run_audit(data: AuditData, method: str | None = None, folds: int = 5, seed: int = 0, top: int = 100,
              neighbors: bool = True, encoder: str = "default", k_neighbors: int = 10,
              orders: tuple[str, str] = ("ab", "ba"), confidence: float = 0.95, stack: bool = True,
              progress: bool = False) -> AuditResult:
    """Audit the annotations in `data` (see `AuditResult`).

    The label model (`method`) fitted without gold gives the gold-free accuracy estimates. With gold, the
    posterior behind the flags and the corrected estimates is the label model fitted with gold, or, with
    `stack` and at least STACK_MIN_GOLD gold items, a logistic regression trained on the gold items over
    the votes and the gold-free posterior (cross-fitted on the gold items themselves).
    """
    method = method or default_method()
    votes, gold, k = data.votes, data.gold, len(data.classes)
    n_gold = int((gold >= 0).sum())
    proba_nogold = _fit(method, votes, k, None, seed)
    proba, proba_oof, posterior = gold_posterior(method, votes, proba_nogold, gold, folds, seed, stack)
    hard = proba_nogold.argmax(axis=1)  # the labels as they stand: no gold

    # per annotator
    q = stats.soft_accuracy(votes, proba_nogold)
    est_acc = np.nanmean(np.where(votes >= 0, q, np.nan), axis=0) if len(votes) else np.array([])
    kappa, shared = stats.cohen_kappa_matrix(votes, k)
    off = ~np.eye(len(data.annotators), dtype=bool)
    mean_kappa = np.array([np.nanmean(np.where(off[j], kappa[j], np.nan)) if np.isfinite(kappa[j][off[j]]).any()
                           else np.nan for j in range(len(data.annotators))])
    labeled = gold >= 0
    gold_conf = np.full((len(data.annotators), k, k), np.nan)
    gold_acc, gold_n = np.full(len(data.annotators), np.nan), np.zeros(len(data.annotators), int)
    for j in range(len(data.annotators)):
        m = labeled & (votes[:, j] >= 0)
        gold_n[j] = int(m.sum())
        if m.any():
            gold_acc[j] = float((votes[m, j] == gold[m]).mean())
            c = np.zeros((k, k))
            np.add.at(c, (gold[m], votes[m, j]), 1.0)
            rows = c.sum(axis=1, keepdims=True)
            gold_conf[j] = np.divide(c, rows, out=np.full_like(c, np.nan), where=rows > 0)
    corrected = corrected_accuracy(votes, proba, proba_oof, gold, confidence) if n_gold >= MIN_GOLD else \
        [None] * len(data.annotators)
    annotators = pd.DataFrame({
        "annotator": data.annotators,
        "n_labeled": (votes >= 0).sum(axis=0),
        "abstain_rate": stats.abstain_rate(votes),
        "estimated_accuracy": est_acc,
        "gold_items": gold_n,
        "gold_accuracy": gold_acc,
        "corrected_accuracy": [c.estimate if c else np.nan for c in corrected],
        "corrected_accuracy_low": [c.low if c else np.nan for c in corrected],
        "corrected_accuracy_high": [c.high if c else np.nan for c in corrected],
        "mean_kappa": mean_kappa,
    })
    for c, name in enumerate(data.classes):
        annotators[f"share_{name}"] = (votes == c).sum(axis=0) / np.maximum((votes >= 0).sum(axis=0), 1)

    agreement = {"fleiss_kappa": stats.fleiss_kappa(votes, k), "krippendorff_alpha": stats.krippendorff_alpha(votes),
                 "mean_pairwise_cohen_kappa": float(np.nanmean(kappa[off])) if off.any() else float("nan"),
                 **shared_errors(votes, k)}

    pb_rows = []
    for base, a, b in stats.order_pairs(data.annotators, orders):
        pb = stats.position_bias(votes[:, a], votes[:, b], k)
        pb_rows.append({"judge": base, orders[0]: data.annotators[a], orders[1]: data.annotators[b], **pb})
    position = pd.DataFrame(pb_rows)

    prev_rows = [{"source": f"label model ({posterior})", "class": data.classes[r.pop("class_index")], **r}
                 for r in label_prevalence(proba, proba_oof, gold, hard, confidence)]
    for j, name in enumerate(data.annotators):  # an annotator's own reported rate (e.g. a judge's win rate)
        own = votes[:, j]
        for c, cname in enumerate(data.classes):
            f = np.where(own >= 0, (own == c).astype(float), proba_nogold[:, c])
            naive = stats.naive_proportion(own[own >= 0] == c) if (own >= 0).any() else None
            row = {"source": name, "class": cname, "naive": naive.estimate if naive else np.nan,
                   "naive_low": naive.low if naive else np.nan, "naive_high": naive.high if naive else np.nan}
            if n_gold >= MIN_GOLD:
                ppi = stats.ppi_mean(f, labeled, (gold == c).astype(float), confidence=confidence, bounds=(0.0, 1.0))
                row |= {"corrected": ppi.estimate, "corrected_low": ppi.low, "corrected_high": ppi.high}
            prev_rows.append(row)
    prevalence = pd.DataFrame(prev_rows)

    knn = None
    if neighbors and data.text is not None and len(data.items) > 1:
        from ..neighbors.embed import embed_texts
        from ..neighbors.index import knn_label_distribution

        emb = embed_texts(list(data.text), encoder, progress=progress)
        knn = knn_label_distribution(emb, proba, np.ones(len(data.items), bool), k=k_neighbors)
    flagged = flag_items(data, proba, knn, top)
    reliability = reliability_table(np.where(labeled[:, None], proba_oof, np.nan), gold)

    summary = {
        "source": data.source, "method": method, "posterior": posterior, "items": len(data.items), "annotators": len(data.annotators),
        "classes": data.classes, "gold_items": n_gold, "agreement": agreement,
        "posterior_accuracy_on_gold_cross_fitted": (
            float((proba_oof[labeled].argmax(axis=1) == gold[labeled]).mean()) if n_gold >= MIN_GOLD else None),
        "flagged": len(flagged), "position_bias_pairs": len(position),
    }
    return AuditResult(data, method, proba, proba_nogold, proba_oof, annotators,
                       stats.soft_confusion(votes, proba_nogold), gold_conf, kappa, agreement, position,
                       prevalence, flagged, reliability, summary)
