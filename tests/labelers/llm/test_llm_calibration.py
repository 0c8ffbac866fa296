"""Calibration of LLM confidence on generated labelers whose bias / overconfidence is known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax

from labelers.llm.calibration import (
    ContextualCalibrator,
    HistogramBinning,
    TemperatureScaler,
    contextual_calibration,
    renormalize,
    verbal_to_proba,
)
from pipeline.metrics import expected_calibration_error as ece


def labeler(n=3000, k=3, sharpness=1.0, seed=0):
    """Gold y (n,) drawn from calibrated probabilities p (n, k); returns (p, y, logits)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, size=(n, k))
    p = softmax(z * sharpness, axis=1)
    y = np.array([rng.choice(k, p=row) for row in p])
    return p, y, z


def test_contextual_calibration_removes_a_label_word_bias():
    p, y, _ = labeler()
    w = np.array([6.0, 1.0, 1.0])  # the LLM likes label word 0
    biased = renormalize(p * w)
    content_free = renormalize(np.tile(w, (3, 1)) * [[1, 1, 1], [1.1, 1, 0.9], [0.9, 1, 1.1]])
    cal = ContextualCalibrator().fit(content_free)
    assert cal.bias_.shape == (3,)
    fixed = cal.transform(biased)
    np.testing.assert_allclose(fixed, p, atol=0.03)
    acc = lambda q: (q.argmax(1) == y).mean()  # noqa: E731
    assert acc(fixed) > acc(biased) + 0.1
    # mean-prediction bias (no content-free inputs) also helps on a balanced set
    assert acc(ContextualCalibrator().fit_transform(biased)) > acc(biased) + 0.1


def test_contextual_calibration_per_labeler_keeps_abstains_and_restores_a_prior():
    p, _, _ = labeler(n=200, k=2)
    soft = np.stack([renormalize(p * [4, 1]), renormalize(p * [1, 3])], axis=1)  # (N, M=2, K=2)
    soft[:5, 1] = 0.0  # labeler 1 abstains on 5 items
    cal = ContextualCalibrator().fit(soft)
    assert cal.bias_.shape == (2, 2) and cal.bias_[0, 0] > 0.5 and cal.bias_[1, 1] > 0.5
    out = cal.transform(soft)
    assert out.shape == (200, 2, 2) and np.all(out[:5, 1] == 0)
    np.testing.assert_allclose(out[5:].sum(-1), 1.0)
    q = contextual_calibration(np.array([[0.5, 0.5]]), np.array([0.5, 0.5]), prior=np.array([0.9, 0.1]))
    np.testing.assert_allclose(q, [[0.9, 0.1]])


def test_temperature_scaler_undoes_overconfidence_per_labeler():
    p, y, z = labeler(n=4000, seed=1)
    over = softmax(3.0 * z, axis=1)  # the labeler is 3x too sharp
    ts = TemperatureScaler().fit(over[:2000], y[:2000])
    assert ts.temperature_ == pytest.approx(3.0, rel=0.15)
    after = ts.transform(over[2000:])
    assert ece(y[2000:], after) < 0.5 * ece(y[2000:], over[2000:])
    np.testing.assert_array_equal(after.argmax(1), over[2000:].argmax(1))
    soft = np.stack([over, p], axis=1)
    soft[0, 0] = 0.0
    y_seed = y.copy()
    y_seed[2000:] = -1  # unknown gold
    ts2 = TemperatureScaler().fit(soft, y_seed)
    assert ts2.temperature_.shape == (2,) and ts2.temperature_[0] > 2.4 and 0.8 < ts2.temperature_[1] < 1.25
    assert np.all(ts2.transform(soft)[0, 0] == 0)


def test_histogram_binning_fixes_miscalibration_on_held_out_items():
    p, y, z = labeler(n=4000, seed=2)
    over = softmax(3.0 * z, axis=1)
    for strategy in ("uniform", "quantile"):
        hb = HistogramBinning(n_bins=10, strategy=strategy).fit(over[:2000], y[:2000])
        after = hb.transform(over[2000:])
        assert hb.accuracy_.shape == (1, 10) and hb.edges_.shape == (1, 11)
        np.testing.assert_allclose(after.sum(1), 1.0)
        assert ece(y[2000:], after) < 0.5 * ece(y[2000:], over[2000:])


def test_verbal_confidence_to_proba():
    q = verbal_to_proba(np.array([1, 0, -1]), np.array([0.9, 0.6, 0.8]), 3)
    np.testing.assert_allclose(q, [[0.05, 0.9, 0.05], [0.6, 0.2, 0.2], [0, 0, 0]])


def test_bad_input_gets_clear_errors():
    with pytest.raises(ValueError, match="bias shape"):
        contextual_calibration(np.ones((4, 2)) / 2, np.ones(3) / 3)
    with pytest.raises(ValueError, match=r"\(N, K\) or \(N, M, K\)"):
        ContextualCalibrator().fit(np.ones(3))
    with pytest.raises(RuntimeError, match="not fitted"):
        TemperatureScaler().transform(np.ones((2, 2)) / 2)
    with pytest.raises(ValueError, match="y must be"):
        TemperatureScaler().fit(np.ones((4, 2)) / 2, np.array([0, 1]))
    with pytest.raises(ValueError, match="within -1..1"):
        HistogramBinning().fit(np.ones((2, 2)) / 2, np.array([0, 2]))
    with pytest.raises(ValueError, match="strategy"):
        HistogramBinning(strategy="isotonic")
    with pytest.raises(ValueError, match="confidence"):
        verbal_to_proba(np.array([0]), np.array([1.5]), 2)
    with pytest.raises(ValueError, match="non-abstain"):
        ContextualCalibrator().fit(np.zeros((3, 2)))
