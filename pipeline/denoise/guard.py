"""A safeguard against denoisers that hurt, judged on the noisy validation labels only (never gold)."""

from __future__ import annotations

import numpy as np

from .base import DenoiseInputs, Refined


def noisy_valid_agreement(embeddings: np.ndarray, labels: np.ndarray, weight: np.ndarray, train: np.ndarray,
                          valid_labels: np.ndarray, valid: np.ndarray, c: float = 1.0) -> float | None:
    """Agreement with the (noisy) `valid_labels` of a logistic regression fit on the train items.

    embeddings (N, D); labels (N,) int training labels (-1 = none); weight (N,) training weights;
    train, valid (N,) bool; valid_labels (N,) int (-1 = none). None when there is nothing to compare.
    """
    from sklearn.linear_model import LogisticRegression

    fit = train & (weight > 0) & (labels >= 0)
    check = valid & (valid_labels >= 0)
    if not check.any() or not fit.any():
        return None
    present = np.unique(labels[fit])
    if len(present) == 1:  # a single class left: the classifier is that constant
        return float(np.mean(valid_labels[check] == present[0]))
    clf = LogisticRegression(C=c, max_iter=2000).fit(embeddings[fit], labels[fit], sample_weight=weight[fit])
    return float(np.mean(clf.predict(embeddings[check]) == valid_labels[check]))


def guard(inputs: DenoiseInputs, refined: Refined, tolerance: float = 0.01) -> Refined:
    """Step aside (return the aggregated labels, info["stepped_aside"] = True) when a classifier fit on
    the refined train labels agrees with the raw noisy valid labels more than `tolerance` less than
    one fit on the raw train labels. Both scores go into info (guard_raw, guard_refined)."""
    train, valid = inputs.split == "train", inputs.split == "valid"
    raw = np.where(inputs.covered, inputs.proba.argmax(axis=1), -1)
    emb = np.asarray(inputs.embeddings, dtype=np.float32)
    raw_score = noisy_valid_agreement(emb, raw, inputs.covered.astype(float), train, raw, valid)
    new_label = np.where(refined.weight > 0, refined.proba.argmax(axis=1), -1)
    new_score = noisy_valid_agreement(emb, new_label, refined.weight, train, raw, valid)
    info = dict(refined.info or {})
    info.update(guard_raw=raw_score, guard_refined=new_score, stepped_aside=False)
    if raw_score is not None and new_score is not None and new_score < raw_score - tolerance:
        info.update(stepped_aside=True, changed=0)
        return Refined(inputs.proba.copy(), inputs.covered.astype(float), info)
    return Refined(refined.proba, refined.weight, info)
