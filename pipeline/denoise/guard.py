"""A safeguard against denoisers that hurt, judged on noisy validation labels only (never gold).

Scoring both classifiers against the raw valid labels favours the raw labels: a classifier trained on
them reproduces the labeler's systematic errors, which the raw valid labels share. So the check is made
on the valid items the denoiser *kept* (refined label = raw label), where both label sets agree, and
averaged over classes so that a denoiser cannot pass by collapsing onto the classes it keeps; a class
the denoiser relabelled entirely is scored on all its raw valid items. Even there the raw labels keep
an edge (a kept item of class c may truly be another class the raw classifier also calls c), so the
denoiser steps aside only when the loss is both above the tolerance and significant: the two
classifiers are compared item by item (paired), and the class-weighted difference must exceed
`z` standard errors (default 1.645: a one-sided test at 5%).
"""

from __future__ import annotations

import numpy as np

from .base import DenoiseInputs, Refined


def _fit_predict(embeddings: np.ndarray, labels: np.ndarray, weight: np.ndarray, fit: np.ndarray,
                 rows: np.ndarray, c: float) -> np.ndarray | None:
    """Predictions on `rows` of a logistic regression fit on the `fit` items; None without items."""
    from sklearn.linear_model import LogisticRegression

    fit = fit & (weight > 0) & (labels >= 0)
    if not fit.any():
        return None
    present = np.unique(labels[fit])
    if len(present) == 1:  # a single class left: the classifier is that constant
        return np.full(len(rows), present[0])
    clf = LogisticRegression(C=c, max_iter=2000).fit(embeddings[fit], labels[fit], sample_weight=weight[fit])
    return clf.predict(embeddings[rows])


def kept_label_agreement(embeddings: np.ndarray, raw: np.ndarray, raw_weight: np.ndarray, new: np.ndarray,
                         new_weight: np.ndarray, split: np.ndarray, c: float = 1.0) -> dict:
    """Class-averaged agreement, on the valid items the denoiser kept, of classifiers fit on the raw and
    on the refined train labels.

    embeddings (N, D); raw, new (N,) int labels (-1 = none); raw_weight, new_weight (N,) training
    weights; split (N,) "train" | "valid" | "test". Returns {"raw", "refined"} (None when there is
    nothing to compare), "kept" (fraction of the labelled valid items kept), "stderr" (standard error of
    raw - refined from the paired item-wise differences).
    """
    train, valid = split == "train", split == "valid"
    labelled = np.flatnonzero(valid & (raw >= 0))
    out = {"raw": None, "refined": None, "kept": None, "stderr": None}
    if len(labelled) == 0:
        return out
    kept = (new[labelled] == raw[labelled]) & (new_weight[labelled] > 0)
    out["kept"] = float(kept.mean())
    pred_raw = _fit_predict(embeddings, raw, raw_weight, train, labelled, c)
    pred_new = _fit_predict(embeddings, new, new_weight, train, labelled, c)
    if pred_raw is None or pred_new is None:
        return out
    weight = np.zeros(len(labelled))
    classes = np.unique(raw[labelled])
    for cls in classes:
        members = raw[labelled] == cls
        check = members & kept if (members & kept).any() else members
        weight[check] = 1.0 / (len(classes) * check.sum())
    right_raw = (pred_raw == raw[labelled]).astype(float)
    right_new = (pred_new == raw[labelled]).astype(float)
    out.update(raw=float(np.sum(weight * right_raw)), refined=float(np.sum(weight * right_new)),
               stderr=float(np.sqrt(np.sum((weight * (right_raw - right_new)) ** 2))))
    return out


def harmful(scores: dict, tolerance: float, z: float = 1.645) -> bool:
    """Whether `kept_label_agreement` scores show a loss above `tolerance` and `z` standard errors."""
    if scores["raw"] is None or scores["refined"] is None:
        return False
    loss = scores["raw"] - scores["refined"]
    return loss > tolerance and loss > z * scores["stderr"]


def guard(inputs: DenoiseInputs, refined: Refined, tolerance: float = 0.01, z: float = 1.645) -> Refined:
    """Step aside (return the aggregated labels, info["stepped_aside"] = True) when the classifier fit on
    the refined train labels scores below the one fit on the raw labels in `kept_label_agreement` by
    more than `tolerance` and more than `z` standard errors (see `harmful`). The scores go into info
    (guard_raw, guard_refined, guard_stderr, guard_kept)."""
    raw = np.where(inputs.covered, inputs.proba.argmax(axis=1), -1)
    new = np.where(refined.weight > 0, refined.proba.argmax(axis=1), -1)
    scores = kept_label_agreement(np.asarray(inputs.embeddings, dtype=np.float32), raw,
                                  inputs.covered.astype(float), new, refined.weight, inputs.split)
    info = dict(refined.info or {})
    info.update(guard_raw=scores["raw"], guard_refined=scores["refined"], guard_stderr=scores["stderr"],
                guard_kept=scores["kept"], stepped_aside=False)
    if harmful(scores, tolerance, z):
        info.update(stepped_aside=True, changed=0)
        return Refined(inputs.proba.copy(), inputs.covered.astype(float), info)
    return Refined(refined.proba, refined.weight, info)
