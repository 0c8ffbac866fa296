"""Majority vote and the kNN label distribution against hand-computed answers."""

import numpy as np
import pytest

from pipeline.labelmodels import MajorityVote
from pipeline.neighbors.dynamics import candidate_sets, clean_by_confidence
from pipeline.neighbors.index import knn_label_distribution

VOTES = np.array([
    [0, 0, 1],    # 2 vs 1 -> class 0
    [1, -1, 2],   # tie 1/2
    [-1, -1, -1],  # nobody votes -> prior
    [2, 2, -1],
])


def test_majority_vote_shares_and_prior():
    mv = MajorityVote().fit(VOTES, 3)
    # vote counts per class: 0:2, 1:2, 2:3 ; prior = (counts + 1) / sum = [3, 3, 4] / 10
    np.testing.assert_allclose(mv.class_prior_, [0.3, 0.3, 0.4])
    np.testing.assert_allclose(mv.predict_proba(VOTES), [[2 / 3, 1 / 3, 0], [0, .5, .5], [.3, .3, .4], [0, 0, 1]])


def test_majority_vote_tie_policies():
    assert MajorityVote(tie_break="prior").fit(VOTES, 3).predict(VOTES).tolist() == [0, 2, 2, 2]
    assert MajorityVote(tie_break="abstain").fit(VOTES, 3).predict(VOTES).tolist() == [0, -1, 2, 2]
    rnd = MajorityVote(tie_break="random", seed=3).fit(VOTES, 3).predict(VOTES)
    assert rnd[0] == 0 and rnd[1] in (1, 2) and rnd[3] == 2


def test_majority_vote_rejects_votes_outside_class_range():
    with pytest.raises(ValueError, match="outside the class range"):
        MajorityVote().fit(np.array([[0, 3]]), 3)


def test_knn_distribution_by_hand():
    # four points on a line (normalized 2-d vectors at angles), labels 0, 0, 1, 1
    angles = np.array([0.0, 0.1, 0.3, 0.35])
    emb = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    labels = np.eye(2)[[0, 0, 1, 1]]
    pool = np.ones(4, dtype=bool)
    out = knn_label_distribution(emb, labels, pool, k=2, eps=0.0)
    chord = lambda a, b: 2 * np.sin(abs(a - b) / 2)  # noqa: E731 - L2 distance of unit vectors
    # item 0: neighbours 1 (label 0) and 2 (label 1), never itself
    w1, w2 = 1 / chord(0.0, 0.1), 1 / chord(0.0, 0.3)
    np.testing.assert_allclose(out[0], [w1 / (w1 + w2), w2 / (w1 + w2)], rtol=1e-4)
    # item 3: neighbours 2 (label 1) and 1 (label 0)
    w2, w1 = 1 / chord(0.35, 0.3), 1 / chord(0.35, 0.1)
    np.testing.assert_allclose(out[3], [w1 / (w1 + w2), w2 / (w1 + w2)], rtol=1e-4)


def test_knn_pool_restricts_neighbours():
    emb = np.eye(3, dtype=np.float32)
    labels = np.eye(2)[[0, 1, 1]]
    out = knn_label_distribution(emb, labels, np.array([True, False, False]), k=5)
    # only item 0 may be a neighbour; item 0 itself has none -> uniform
    np.testing.assert_allclose(out, [[0.5, 0.5], [1, 0], [1, 0]])


def test_candidate_sets():
    knn = np.array([[0.95, 0.05, 0.0], [0.5, 0.35, 0.15], [0.4, 0.3, 0.3]])
    c = candidate_sets(knn, certain_threshold=0.9, dominant_threshold=0.8)
    assert c.kind.tolist() == ["certain", "dominant", "uncertain"]
    np.testing.assert_allclose(c.weights, [[1, 0, 0], [0.5 / 0.85, 0.35 / 0.85, 0], [0.4, 0.3, 0.3]])


def test_clean_by_confidence_takes_top_fraction_of_eligible():
    conf = np.array([0.9, 0.1, 0.8, 0.7, 0.99])
    eligible = np.array([True, True, True, True, False])
    assert clean_by_confidence(conf, eligible, 0.5).tolist() == [True, False, True, False, False]
