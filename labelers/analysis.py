"""Labeling-function analysis: coverage, overlap, conflict, polarity and empirical accuracy per labeler.

Pure functions over a vote matrix `votes` (N, M) int, -1 = abstain. The definitions are Snorkel's
`LFAnalysis` ones (snorkel.labeling.analysis), as fractions of all N items:

- coverage of labeler j: items j votes on;
- overlap of j: items j votes on that at least one other labeler also votes on;
- conflict of j: items j votes on where the non-abstaining votes are not all the same class
  (so some other labeler votes differently from j);
- polarity of j: the sorted set of classes j emits;
- empirical accuracy of j: correct / (correct + incorrect) over the items with gold that j votes on.
  Snorkel reports 0 where that count is 0; here it is None (NaN in the frame), with the count beside it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.labelmodels.base import check_votes


def _n_votes(votes: np.ndarray) -> np.ndarray:
    return (votes >= 0).sum(axis=1)


def overlapped_items(votes: np.ndarray) -> np.ndarray:
    """(N,) bool: at least two labelers vote on the item."""
    return _n_votes(votes) >= 2


def conflicted_items(votes: np.ndarray) -> np.ndarray:
    """(N,) bool: two labelers give the item different classes."""
    if votes.shape[1] == 0:
        return np.zeros(len(votes), dtype=bool)
    high = votes.max(axis=1)
    low = np.where(votes >= 0, votes, np.iinfo(np.int64).max).min(axis=1)
    return (high >= 0) & (low != high)


def _per_labeler(votes: np.ndarray, rows: np.ndarray) -> np.ndarray:
    n = max(len(votes), 1)
    return ((votes >= 0) & rows[:, None]).sum(axis=0) / n


def lf_coverages(votes) -> np.ndarray:
    """(M,) fraction of the N items each labeler votes on."""
    votes = check_votes(votes)
    return _per_labeler(votes, np.ones(len(votes), dtype=bool))


def lf_overlaps(votes) -> np.ndarray:
    """(M,) fraction of the N items each labeler votes on and at least one other labeler votes on too."""
    votes = check_votes(votes)
    return _per_labeler(votes, overlapped_items(votes))


def lf_conflicts(votes) -> np.ndarray:
    """(M,) fraction of the N items each labeler votes on and another labeler gives a different class."""
    votes = check_votes(votes)
    return _per_labeler(votes, conflicted_items(votes))


def lf_polarities(votes) -> list[list[int]]:
    """For each of the M labelers, the sorted class indices it emits."""
    votes = check_votes(votes)
    return [sorted(int(c) for c in np.unique(col[col >= 0])) for col in votes.T]


def label_coverage(votes) -> float:
    """Fraction of items with at least one vote."""
    votes = check_votes(votes)
    return float((_n_votes(votes) >= 1).mean()) if len(votes) else 0.0


def label_overlap(votes) -> float:
    """Fraction of items with at least two votes."""
    votes = check_votes(votes)
    return float(overlapped_items(votes).mean()) if len(votes) else 0.0


def label_conflict(votes) -> float:
    """Fraction of items whose votes disagree."""
    votes = check_votes(votes)
    return float(conflicted_items(votes).mean()) if len(votes) else 0.0


def lf_empirical_accuracies(votes, gold) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Accuracy of each labeler against gold where both exist.

    votes (N, M) int, gold (N,) int with -1 = unknown. Returns (accuracy (M,) float, NaN where the
    labeler votes on no gold item; correct (M,) int; incorrect (M,) int).
    """
    votes = check_votes(votes)
    gold = np.asarray(gold, dtype=np.int64).reshape(-1)
    if len(gold) != len(votes):
        raise ValueError(f"gold has {len(gold)} labels for {len(votes)} items")
    scored = (votes >= 0) & (gold >= 0)[:, None]
    correct = (scored & (votes == gold[:, None])).sum(axis=0)
    total = scored.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(total > 0, correct / np.maximum(total, 1), np.nan)
    return accuracy, correct, total - correct


def lf_summary(votes, names: list[str] | None = None, classes: list[str] | None = None, gold=None,
               kinds: list[str] | None = None) -> pd.DataFrame:
    """One row per labeler: kind, polarity (class names), coverage, overlap, conflict and, with gold,
    correct, incorrect, gold_n (= correct + incorrect) and accuracy (NaN when gold_n is 0).

    votes (N, M) int (-1 abstain); names / kinds (M,); classes (K,) names the polarity; gold (N,) int
    (-1 unknown) or None.
    """
    votes = check_votes(votes, len(classes) if classes is not None else None)
    m = votes.shape[1]
    names = list(names) if names is not None else [str(j) for j in range(m)]
    if len(names) != m:
        raise ValueError(f"{len(names)} names for {m} labelers")
    frame = pd.DataFrame({"labeler": names})
    if kinds is not None:
        frame["kind"] = list(kinds)
    polarity = lf_polarities(votes)
    frame["polarity"] = [[classes[c] for c in p] if classes is not None else p for p in polarity]
    frame["coverage"] = lf_coverages(votes)
    frame["overlap"] = lf_overlaps(votes)
    frame["conflict"] = lf_conflicts(votes)
    if gold is not None:
        accuracy, correct, incorrect = lf_empirical_accuracies(votes, gold)
        frame["correct"], frame["incorrect"] = correct, incorrect
        frame["gold_n"] = correct + incorrect
        frame["accuracy"] = accuracy
    return frame


def lf_report(votes, names: list[str], classes: list[str], gold=None, kinds: list[str] | None = None) -> dict:
    """The analysis as a JSON-ready dict: `summary` (items, gold items, label coverage / overlap /
    conflict) and `labelers` (the rows of `lf_summary`, accuracy None where there is no gold)."""
    votes = check_votes(votes, len(classes))
    frame = lf_summary(votes, names, classes, gold, kinds)
    rows = []
    for rec in frame.to_dict(orient="records"):
        out = {}
        for key, value in rec.items():
            if isinstance(value, (np.integer,)):
                value = int(value)
            elif isinstance(value, (float, np.floating)):
                value = None if np.isnan(value) else float(value)
            out[key] = value
        rows.append(out)
    gold_items = int((np.asarray(gold) >= 0).sum()) if gold is not None else 0
    summary = {"items": int(len(votes)), "labelers": int(votes.shape[1]), "gold_items": gold_items,
               "label_coverage": label_coverage(votes), "label_overlap": label_overlap(votes),
               "label_conflict": label_conflict(votes)}
    return {"classes": list(classes), "summary": summary, "labelers": rows}
