"""Confident learning: cleanlab's find_label_issues on out-of-fold predicted probabilities."""

from __future__ import annotations

import numpy as np

from ..crossfit import cross_fit
from .base import DenoiseInputs, Refined


def out_of_fold_proba(embeddings: np.ndarray, labels: np.ndarray, n_classes: int, folds: int = 5, c: float = 1.0,
                      seed: int = 0) -> np.ndarray:
    """(N, K) out-of-fold probabilities of a logistic regression on the (N, D) embeddings with (N,) labels.

    Classes missing from a training fold get probability 0 in that fold's predictions.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    counts = np.bincount(labels, minlength=n_classes)
    folds = int(max(2, min(folds, counts[counts > 0].min()))) if (counts > 0).sum() > 1 else 2
    def fit_predict(train: np.ndarray, part: np.ndarray) -> np.ndarray:
        train = np.sort(train)  # the splitter's order
        clf = LogisticRegression(C=c, max_iter=2000).fit(embeddings[train], labels[train])
        out = np.zeros((len(part), n_classes))
        out[:, clf.classes_] = clf.predict_proba(embeddings[part])
        return out

    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return cross_fit(fit_predict, [part for _, part in splitter.split(embeddings, labels)], len(labels))


def confident_learning_denoise(inputs: DenoiseInputs, action: str = "prune", folds: int = 5, c: float = 1.0,
                               filter_by: str = "prune_by_noise_rate") -> Refined:
    """Flag label issues among the labelled train and valid items with cleanlab.

    action "prune": flagged items get training weight 0; "relabel": flagged items take the
    out-of-fold argmax. Labels of other items are unchanged. info: changed, flagged.
    """
    from cleanlab.filter import find_label_issues

    if action not in ("prune", "relabel"):
        raise ValueError(f"confident-learning: action must be 'prune' or 'relabel', got '{action}'")
    n_classes = inputs.proba.shape[1]
    proba, weight = inputs.proba.copy(), inputs.covered.astype(float)
    idx = np.flatnonzero(inputs.covered & np.isin(inputs.split, ["train", "valid"]))
    labels = inputs.proba[idx].argmax(axis=1)
    if len(idx) < 2 * n_classes or len(np.unique(labels)) < 2:
        return Refined(proba, weight, {"changed": 0, "flagged": 0, "skipped": "too few labelled items"})
    oof = out_of_fold_proba(np.asarray(inputs.embeddings, dtype=np.float32)[idx], labels, n_classes, folds, c,
                            inputs.seed)
    present = np.unique(labels)
    # cleanlab needs every class it is told about to appear; restrict to the labelled classes
    issues = find_label_issues(np.searchsorted(present, labels), oof[:, present] / np.maximum(
        oof[:, present].sum(1, keepdims=True), 1e-12), filter_by=filter_by)
    flagged = idx[issues]
    if action == "prune":
        weight[flagged] = 0.0
        changed = len(flagged)
    else:
        new = oof[issues].argmax(axis=1)
        proba[flagged] = np.eye(n_classes)[new]
        changed = int((new != labels[issues]).sum())
    return Refined(proba, weight, {"changed": int(changed), "flagged": int(len(flagged)), "action": action})
