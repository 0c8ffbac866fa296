import numpy as np
import pytest

from pipeline.calibration import (
    crossfit_nll,
    fit_temperature,
    fit_vector_scaling,
    nll,
    reliability_bins,
    reliability_svg,
    scaled_proba,
)
from pipeline.metrics import expected_calibration_error


def _sample(n=4000, k=4, true_t=2.0, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2, size=(n, k))
    p = scaled_proba(z, 1.0)
    labels = np.array([rng.choice(k, p=row) for row in p])
    return z * true_t, labels  # logits overconfident by a factor true_t


def test_fit_temperature_recovers_the_scale_and_lowers_nll_and_ece():
    logits, labels = _sample()
    t = fit_temperature(logits, labels)
    assert t == pytest.approx(2.0, rel=0.1)
    assert nll(logits, labels, t) < nll(logits, labels, 1.0)
    before = expected_calibration_error(labels, scaled_proba(logits, 1.0))
    after = expected_calibration_error(labels, scaled_proba(logits, t))
    assert after < before and after < 0.03


def test_fit_temperature_ignores_unknown_labels_and_defaults_to_one():
    logits, labels = _sample(n=500)
    with_unknown = np.concatenate([labels, -np.ones(100, int)])
    logits_more = np.concatenate([logits, np.zeros((100, logits.shape[1]))])
    assert fit_temperature(logits_more, with_unknown) == pytest.approx(fit_temperature(logits, labels), rel=1e-3)
    assert fit_temperature(logits, -np.ones(len(labels), int)) == 1.0


def test_fit_vector_scaling_recovers_a_class_bias_that_a_temperature_cannot():
    rng = np.random.default_rng(1)
    z = rng.normal(0, 2, size=(6000, 3))
    scale, bias = np.array([0.5, 0.8, 0.4]), np.array([0.0, 1.0, -1.0])  # e.g. label noise toward class 1
    labels = np.array([rng.choice(3, p=row) for row in scaled_proba(z * scale + bias)])
    w, b = fit_vector_scaling(z, labels, l2=1e-4)
    np.testing.assert_allclose(w, scale, atol=0.06)
    np.testing.assert_allclose(b - b.mean(), bias - bias.mean(), atol=0.12)  # softmax ignores a common shift
    assert nll(z * w + b, labels) < nll(z, labels, fit_temperature(z, labels)) - 0.02
    known = np.concatenate([labels[:300], -np.ones(50, int)])
    w_unknown, _ = fit_vector_scaling(np.concatenate([z[:300], np.zeros((50, 3))]), known)
    np.testing.assert_allclose(w_unknown, fit_vector_scaling(z[:300], labels[:300])[0], rtol=1e-3)
    w, b = fit_vector_scaling(z, -np.ones(len(z), int))
    assert w.tolist() == [1, 1, 1] and b.tolist() == [0, 0, 0]


def test_scaled_proba_rows_sum_to_one_and_keep_argmax():
    logits, _ = _sample(n=50)
    for t in (0.5, 1.0, 3.0):
        p = scaled_proba(logits, t)
        assert p.shape == logits.shape
        np.testing.assert_allclose(p.sum(axis=1), 1.0)
        np.testing.assert_array_equal(p.argmax(axis=1), logits.argmax(axis=1))


def test_reliability_bins_and_svg():
    proba = np.array([[0.95, 0.05], [0.9, 0.1], [0.6, 0.4], [0.55, 0.45]])
    labels = np.array([0, 1, 0, 0])
    bins = reliability_bins(labels, proba, n_bins=10)
    assert bins["count"].sum() == 4
    assert bins["count"][9] == 2 and bins["accuracy"][9] == 0.5  # conf 0.95 (right) and 0.9 (wrong)
    assert bins["confidence"][9] == pytest.approx(0.925)
    assert np.isnan(bins["accuracy"][0])
    svg = reliability_svg({"before": bins, "after": bins}, title="t")
    assert svg.startswith("<svg") and svg.count("<polyline") == 2 and "after" in svg


def test_crossfit_nll_scores_each_fold_at_the_other_folds_temperature():
    logits, labels = _sample(n=300)
    # by hand: the same seeded permutation, two folds
    parts = np.array_split(np.random.default_rng(0).permutation(300), 2)
    manual = sum(nll(logits[a], labels[a], fit_temperature(logits[b], labels[b])) * len(a)
                 for a, b in (parts, parts[::-1])) / 300
    assert crossfit_nll(logits, labels) == pytest.approx(manual, rel=1e-9)
    in_sample = nll(logits, labels, fit_temperature(logits, labels))
    assert in_sample <= crossfit_nll(logits, labels) < nll(logits, labels, 1.0)  # no in-sample optimism
    # unknown labels are left out; a single known item: its in-sample NLL; none: NaN
    with_unknown = np.concatenate([labels, -np.ones(50, int)])
    assert np.isfinite(crossfit_nll(np.vstack([logits, logits[:50]]), with_unknown))
    one = np.array([2, -1, -1])
    assert crossfit_nll(logits[:3], one) == pytest.approx(nll(logits[:1], labels[:1] * 0 + 2,
                                                              fit_temperature(logits[:1], np.array([2]))))
    assert np.isnan(crossfit_nll(logits[:3], -np.ones(3, int)))
