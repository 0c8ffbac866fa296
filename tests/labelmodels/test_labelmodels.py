"""Label models on generated votes with known labeler accuracies, soft votes, gold seeds and bad input."""

import numpy as np
import pytest

from pipeline.labelmodels import LABEL_MODELS, AutoLabelModel, DawidSkene, MatrixCompletion, make_label_model
from pipeline.labelmodels.auto import beats_by_se, bootstrap_weights, cv_item_scores, cv_score, make_candidate
from pipeline.labelmodels.supervised import BestLabeler, PosteriorStacker, VoteStacker

NAMES = sorted(LABEL_MODELS)


def generate(n=3000, acc=(0.9, 0.8, 0.7, 0.65, 0.6, 0.55), k=3, abstain=0.2, seed=0):
    """votes (N, M), truth (N,): labeler j is right with probability acc[j], errors uniform, abstains at random."""
    rng = np.random.default_rng(seed)
    acc = np.asarray(acc)
    y = rng.integers(0, k, n)
    right = rng.random((n, len(acc))) < acc
    wrong = (y[:, None] + rng.integers(1, k, (n, len(acc)))) % k
    votes = np.where(right, y[:, None], wrong)
    votes[rng.random(votes.shape) < abstain] = -1
    return votes, y, acc


def test_dawid_skene_recovers_accuracies_and_beats_majority():
    votes, y, acc = generate()
    ds = DawidSkene().fit(votes, 3)
    est = np.array(ds.report(votes)["labeler_accuracy"])
    assert np.abs(est - acc).max() < 0.03
    mv = make_label_model("majority").fit(votes, 3)
    assert (ds.predict(votes) == y).mean() > (mv.predict(votes) == y).mean() + 0.02
    conf = np.array(ds.report(votes)["labeler_confusion"])
    assert conf.shape == (6, 3, 3) and np.allclose(conf.sum(axis=2), 1)


def test_matrix_completion_recovers_accuracies_without_gold():
    votes, y, acc = generate()
    mc = MatrixCompletion(prior="em", l2=1e-3).fit(votes, 3)  # weak pull toward the start
    est = np.array(mc.report(votes)["labeler_accuracy"])
    assert np.abs(est - acc).max() < 0.06
    assert (mc.predict(votes) == y).mean() > 0.85
    rel = MatrixCompletion(prior="em", l2=1e-3, penalty="relative").fit(votes, 3)
    assert np.abs(np.array(rel.report(votes)["labeler_accuracy"]) - acc).max() < 0.06
    with pytest.raises(ValueError, match="penalty"):
        MatrixCompletion(penalty="l1")


def nll(proba, y):
    return -np.mean(np.log(np.clip(proba[np.arange(len(y)), y], 1e-6, 1.0)))


def test_snorkel_mc_tempers_the_posterior_of_labelers_that_err_together():
    """Eight labelers copy one 70%-accurate answer most of the time: multiplying their likelihoods as if they
    were independent gives 0.999 mean confidence at 0.71 accuracy. The held-out-vote temperature softens
    the posterior (lower log loss on the truth) and leaves every label as it was."""
    rng = np.random.default_rng(0)
    n, k = 3000, 3
    y = rng.integers(0, k, n)

    def noisy(base, acc):
        return np.where(rng.random(n) < acc, base, (base + rng.integers(1, k, n)) % k)

    shared = noisy(y, 0.7)
    votes = np.stack([np.where(rng.random(n) < 0.85, shared, noisy(y, 0.7)) for _ in range(8)]
                     + [noisy(y, 0.75), noisy(y, 0.75)], axis=1)
    for tempered, plain in [(MatrixCompletion().fit(votes, k), MatrixCompletion(temperature=1.0).fit(votes, k)),
                            (DawidSkene(temperature="auto").fit(votes, k), DawidSkene().fit(votes, k))]:
        assert tempered.temperature_ > 1 and plain.temperature_ == 1
        assert nll(tempered.predict_proba(votes), y) < nll(plain.predict_proba(votes), y) - 0.5
        np.testing.assert_array_equal(tempered.predict(votes), plain.predict(votes))
    with pytest.raises(ValueError, match="temperature"):
        DawidSkene(temperature=-1)


def test_snorkel_mc_keeps_the_posterior_of_independent_labelers():
    votes, _, _ = generate()
    assert MatrixCompletion().fit(votes, 3).temperature_ == 1.0
    assert MatrixCompletion(temperature=2.5).fit(votes, 3).temperature_ == 2.5
    with pytest.raises(ValueError, match="temperature"):
        MatrixCompletion(temperature=0)
    assert AutoLabelModel(base="snorkel_mc", temperature=2.5).fit(votes, 3).report(votes)["temperature"] == 2.5


@pytest.mark.parametrize("name", ["snorkel_mc", "auto", "dawid_skene"])
def test_report_measures_labelers_against_the_posterior(name):
    """Default settings, no gold: the reported accuracies follow the true ones (0.55 ... 0.9) in order, where
    snorkel_mc's own parameters, held near their start by its penalty, put every labeler at 0.84-0.88."""
    votes, _, acc = generate()
    rep = make_label_model(name).fit(votes, 3).report(votes)
    est = np.array(rep["labeler_accuracy"])
    assert np.abs(est - acc).max() < 0.06 and (np.diff(est) < 0).all()
    assert np.allclose(np.array(rep["labeler_confusion"]).sum(axis=2), 1)
    assert np.array(rep["model_confusion"]).shape == (6, 3, 3)
    assert rep["temperature"] == 1.0  # independent labelers: T = 1 (auto's search, Dawid-Skene's default)
    if name == "auto":
        assert rep["base"] == "dawid_skene" and rep["density"] > 0.5 and rep["dependence"] < 0.05


@pytest.mark.parametrize("name", NAMES)
def test_every_model_fits_predicts_and_reports(name):
    votes, y, _ = generate(n=600)
    model = make_label_model(name).fit(votes, 3)
    proba = model.predict_proba(votes)
    assert proba.shape == (600, 3) and np.allclose(proba.sum(axis=1), 1)
    assert (model.predict(votes) == y).mean() > 0.75
    rep = model.report(votes)
    assert len(rep["labeler_accuracy"]) == 6 and np.array(rep["labeler_confusion"]).shape == (6, 3, 3)
    assert len(rep["class_prior"]) == 3


@pytest.mark.parametrize("name", NAMES)
def test_soft_one_hot_votes_match_hard_votes(name):
    votes, _, _ = generate(n=500)
    soft = (votes[:, :, None] == np.arange(3)).astype(float)
    hard_model = make_label_model(name).fit(votes, 3)
    soft_model = make_label_model(name).fit(soft, 3)
    np.testing.assert_allclose(soft_model.predict_proba(soft), hard_model.predict_proba(votes), atol=1e-4)
    soft_rep, hard_rep = soft_model.report(soft), hard_model.report(votes)
    for key in ("labeler_accuracy", "labeler_confusion"):
        np.testing.assert_allclose(soft_rep[key], hard_rep[key], atol=1e-4)


def test_soft_probability_votes_work():
    votes, y, _ = generate(n=2000, k=2)
    onehot = (votes[:, :, None] == np.arange(2)).astype(float)
    soft = np.where(votes[:, :, None] >= 0, 0.8 * onehot + 0.1, 0.0)  # each vote 0.9 / 0.1
    ds = DawidSkene().fit(soft, 2)
    assert (ds.predict(soft) == y).mean() > 0.85


def colluding_labelers(n: int = 2000):
    """(votes (n, 5), y (n,), rng): three labelers wrong 80% of the time in the same way, two honest ones."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, n)
    bad = np.where(rng.random(n) < 0.8, 1 - y, y)
    votes = np.stack([bad, bad, np.where(rng.random(n) < 0.95, bad, 1 - bad),
                      np.where(rng.random(n) < 0.8, y, 1 - y), np.where(rng.random(n) < 0.75, y, 1 - y)], axis=1)
    return votes, y, rng


def test_gold_seed_anchors_adversarial_labelers():
    # three colluding labelers that are wrong 80% of the time in the same way, two honest ones: without
    # gold the majority story wins; a 60-item gold seed lets the auto model find the honest labelers
    votes, y, rng = colluding_labelers()
    n = len(y)
    gold = np.full(n, -1)
    seed_items = rng.choice(n, 60, replace=False)
    gold[seed_items] = y[seed_items]
    rest = np.setdiff1d(np.arange(n), seed_items)
    plain = AutoLabelModel().fit(votes, 2)
    seeded = AutoLabelModel().fit(votes, 2, gold=gold)
    acc_plain = (plain.predict(votes[rest]) == y[rest]).mean()
    acc_seeded = (seeded.predict(votes[rest]) == y[rest]).mean()
    assert acc_seeded > acc_plain + 0.2, (acc_plain, acc_seeded, seeded.selected_)
    assert set(seeded.cv_scores_) == set(AutoLabelModel().candidates)


def test_gold_clamps_dawid_skene_and_moves_estimates():
    votes, y, acc = generate(n=1500, seed=3)
    gold = np.full(len(y), -1)
    gold[:300] = y[:300]
    ds = DawidSkene(gold_weight=5.0).fit(votes, 3, gold=gold)
    assert np.abs(np.array(ds.report(votes)["labeler_accuracy"]) - acc).max() < 0.05
    mc = MatrixCompletion().fit(votes, 3, gold=gold)
    assert (mc.predict(votes) == y).mean() > 0.85
    np.testing.assert_allclose(mc.class_prior_, 1 / 3)  # prior="uniform" holds with gold too
    em = MatrixCompletion(prior="em").fit(votes, 3, gold=gold)
    assert not np.allclose(em.class_prior_, 1 / 3) and np.isclose(em.class_prior_.sum(), 1)


def test_class_prior_is_used():
    votes = np.array([[-1, -1], [0, 1], [1, 0]])
    for name in NAMES:
        model = make_label_model(name).fit(np.vstack([votes] * 20), 2, class_prior=[0.2, 0.8])
        assert model.predict(votes)[0] == 1, name


def test_supervised_models_need_gold():
    votes, y, _ = generate(n=200)
    for cls in (VoteStacker, BestLabeler, PosteriorStacker):
        with pytest.raises(ValueError, match="gold"):
            cls().fit(votes, 3)
    gold = np.where(np.arange(200) < 50, y, -1)
    assert BestLabeler().fit(votes, 3, gold=gold).labeler_ == 0


def test_cv_score_balanced_scores_do_not_reward_the_majority_class():
    y = np.array([0] * 45 + [1] * 5)
    always_0 = np.tile([0.9, 0.1], (50, 1))
    finds_1 = np.where((y == 1)[:, None] | (np.arange(50) >= 39)[:, None], [0.2, 0.8], [0.8, 0.2])  # 6 false alarms
    assert cv_score(always_0, y, "accuracy", 2) > cv_score(finds_1, y, "accuracy", 2)
    for scoring in ("balanced_accuracy", "balanced_log_loss"):
        assert cv_score(finds_1, y, scoring, 2) > cv_score(always_0, y, scoring, 2), scoring
    assert cv_score(np.tile([1.0, 0.0], (50, 1)), y, "log_loss", 2) == pytest.approx(0.1 * np.log(0.01))
    with pytest.raises(ValueError, match="scoring"):
        AutoLabelModel(scoring="f1")


def test_cv_item_scores_average_to_the_cv_score():
    rng = np.random.default_rng(0)
    y = rng.choice(3, 40, p=[0.6, 0.3, 0.1])
    proba = rng.dirichlet(np.ones(3), 40)
    for scoring in ("accuracy", "balanced_accuracy", "log_loss", "balanced_log_loss"):
        items = cv_item_scores(proba, y, scoring, 3)
        assert items.shape == (40,)
        assert items.mean() == pytest.approx(cv_score(proba, y, scoring, 3)), scoring
    # explicit: balanced accuracy is the mean recall over the classes present
    pred = proba.argmax(axis=1)
    recalls = [np.mean(pred[y == c] == c) for c in np.unique(y)]
    assert cv_score(proba, y, "balanced_accuracy", 3) == pytest.approx(np.mean(recalls))


def test_beats_by_se_is_the_paired_one_standard_error_rule():
    base = np.zeros(50)
    small = np.r_[np.full(26, 1.0), np.full(24, -1.0)]  # mean 0.04, SE about 0.14
    assert not beats_by_se(small, base, 1.0) and beats_by_se(small, base, 0.0)
    clear = np.r_[np.full(40, 1.0), np.full(10, -1.0)]  # mean 0.6, SE about 0.11
    assert beats_by_se(clear, base, 1.0) and not beats_by_se(clear, base, 10.0)
    assert not beats_by_se(base, base, 0.0)  # no gain, no switch


def test_bootstrap_weights_share_out_the_resamples_each_candidate_wins():
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 1, 50)
    clear = np.stack([noise, noise + 1.0, noise - 1.0])  # candidate 1 wins every resample
    np.testing.assert_array_equal(bootstrap_weights(clear), [0.0, 1.0, 0.0])
    close = np.stack([rng.normal(0, 1, 50), rng.normal(0, 1, 50)])  # neither clearly better: both get weight
    w = bootstrap_weights(close)
    assert w.shape == (2,) and w.sum() == pytest.approx(1.0) and 0.05 < w[0] < 0.95
    np.testing.assert_array_equal(bootstrap_weights(close, seed=3), bootstrap_weights(close, seed=3))
    tied = np.zeros((3, 10))
    np.testing.assert_array_equal(bootstrap_weights(tied), [1.0, 0.0, 0.0])  # ties: the earlier candidate
    shares = bootstrap_weights(close)
    flat = bootstrap_weights(close, power=0.5)  # flattened toward equal weights, the order kept
    np.testing.assert_allclose(flat, np.sqrt(shares) / np.sqrt(shares).sum())
    assert abs(flat[0] - 0.5) < abs(shares[0] - 0.5) and (flat[0] > 0.5) == (shares[0] > 0.5)
    np.testing.assert_array_equal(bootstrap_weights(clear, power=0.5), [0.0, 1.0, 0.0])  # never a non-winner


def test_auto_bootstrap_mixes_the_candidates_it_cannot_tell_apart():
    votes, y, _ = generate(n=1500, seed=5)
    gold = np.full(len(y), -1)
    gold[:50] = y[:50]
    auto = AutoLabelModel(combine="bootstrap").fit(votes, 3, gold=gold)
    assert auto.selected_ == "bootstrap" and len(auto.weights_) > 1
    assert sum(auto.weights_.values()) == pytest.approx(1.0) and set(auto.weights_) <= set(auto.candidates)
    # the two models closest on the CV (snorkel_mc and dawid_skene, -0.319 vs -0.324) share most of the weight
    assert auto.weights_.get("snorkel_mc", 0) + auto.weights_.get("dawid_skene", 0) > 0.8
    proba = auto.predict_proba(votes)
    assert proba.shape == (1500, 3) and np.allclose(proba.sum(axis=1), 1)
    assert (auto.predict(votes[50:]) == y[50:]).mean() > 0.88
    assert auto.report(votes)["selected"] == "bootstrap"
    with pytest.raises(ValueError, match="combine"):
        AutoLabelModel(combine="vote")
    with pytest.raises(ValueError, match="share_power"):
        AutoLabelModel(share_power=0)


def test_auto_keeps_the_gold_free_base_unless_the_gold_clearly_prefers_another():
    # independent labelers: Dawid-Skene, the gold-free base, is the right model; on 50 gold items snorkel_mc's
    # CV score is a hair better (-0.319 vs -0.324), far inside the noise, and it predicts worse
    votes, y, _ = generate(n=1500, seed=5)
    gold = np.full(len(y), -1)
    gold[:50] = y[:50]
    kept = AutoLabelModel(combine="select").fit(votes, 3, gold=gold)
    outright = AutoLabelModel(combine="select", min_gain_se=0.0).fit(votes, 3, gold=gold)
    assert kept.base_ == kept.selected_ == "dawid_skene"
    assert outright.selected_ == max(outright.cv_scores_, key=outright.cv_scores_.get) == "snorkel_mc"
    assert (kept.predict(votes[50:]) == y[50:]).mean() > (outright.predict(votes[50:]) == y[50:]).mean()
    assert AutoLabelModel(combine="select", min_gain_se=np.inf).fit(votes, 3, gold=gold).selected_ == "dawid_skene"
    # colluding labelers: the gold clearly overrules the gold-free base, so the rule lets the switch happen
    votes, y, rng = colluding_labelers()
    gold = np.full(len(y), -1)
    gold[:60] = y[:60]
    switched = AutoLabelModel(combine="select").fit(votes, 2, gold=gold)
    assert switched.selected_ != switched.base_
    assert (switched.predict(votes[60:]) == y[60:]).mean() > 0.8


def test_posterior_stacker_corrects_the_gold_free_model_toward_the_gold():
    # the colluding labelers of the adversarial test: the gold-free posterior follows them, the vote weights
    # learned on 60 gold items overrule them; with a huge penalty the weights stay at zero
    votes, y, rng = colluding_labelers()
    n = len(y)
    gold = np.full(n, -1)
    gold[:60] = y[:60]
    base = MatrixCompletion().fit(votes, 2)
    ps = PosteriorStacker().fit(votes, 2, gold=gold)
    assert (ps.predict(votes[60:]) == y[60:]).mean() > (base.predict(votes[60:]) == y[60:]).mean() + 0.2
    stiff = PosteriorStacker(C=1e-8, base_model=base).fit(votes, 2, gold=gold)
    assert np.abs(stiff.weights_).max() < 1e-4 and stiff.base_model_ is base
    proba = stiff.predict_proba(votes)
    assert proba.shape == (n, 2) and np.allclose(proba.sum(axis=1), 1)


def test_gold_of_one_class_does_not_collapse_auto_onto_that_class():
    # 25 gold items, all of class 1: the CV cannot score telling classes apart, and before the guard the
    # posterior stacker (unbounded class offset) won it and answered class 1 everywhere (accuracy 0.315)
    votes, y, _ = generate(n=600, acc=(0.8,) * 5, abstain=0.3)
    gold = np.full(len(y), -1)
    ones = np.flatnonzero(y == 1)[:25]
    gold[ones] = 1
    plain = AutoLabelModel().fit(votes, 3).predict(votes)
    for combine in ("bootstrap", "select", "pool"):
        auto = AutoLabelModel(combine=combine).fit(votes, 3, gold=gold)
        pred = auto.predict(votes)
        assert auto.selected_ == auto.base_ and auto.cv_scores_ == {}
        assert np.bincount(pred, minlength=3).min() > 100 and (pred == y).mean() > 0.85
        assert (pred == plain).mean() > 0.95


def test_posterior_stacker_keeps_the_base_probability_of_classes_missing_from_the_gold():
    votes, y, _ = generate(n=600, acc=(0.8,) * 5, abstain=0.3)
    gold = np.full(len(y), -1)
    two = np.flatnonzero(y < 2)[:40]  # no gold item of class 2
    gold[two] = y[two]
    base = MatrixCompletion().fit(votes, 3)
    ps = PosteriorStacker(base_model=base).fit(votes, 3, gold=gold)
    proba, base_proba = ps.predict_proba(votes), base.predict_proba(votes)
    np.testing.assert_allclose(proba[:, 2], base_proba[:, 2])
    np.testing.assert_allclose(proba.sum(axis=1), 1)
    assert np.all(np.isfinite(ps.bias_)) and ps.bias_[2] == 0 and not ps.weights_[:, 2].any()
    assert ((ps.predict(votes) == 2) == (y == 2)).mean() > 0.85  # class 2 is still found
    one = np.full(len(y), -1)
    one[two[y[two] == 0]] = 0
    np.testing.assert_allclose(PosteriorStacker(base_model=base).fit(votes, 3, gold=one).predict_proba(votes),
                               base_proba)


def test_auto_with_a_rare_class_does_not_pick_a_model_that_never_predicts_it():
    # a rare class (10%) that three decent labelers find; the labeler that always says "common" is right 90%
    # (the Bayes rule for accuracy finds about half of the rare items: those all three labelers flag)
    rng = np.random.default_rng(4)
    n = 3000
    y = (rng.random(n) < 0.1).astype(int)
    votes = np.stack([np.where(rng.random(n) < a, y, 1 - y) for a in (0.85, 0.8, 0.75)] + [np.zeros(n, int)], axis=1)
    gold = np.full(n, -1)
    gold[:50] = y[:50]
    for auto in (AutoLabelModel().fit(votes, 2, gold=gold),
                 AutoLabelModel(combine="pool", scoring="balanced_log_loss").fit(votes, 2, gold=gold)):
        pred = auto.predict(votes[50:])
        assert pred[y[50:] == 1].mean() > 0.4, (auto.weights_, auto.cv_scores_)
        assert auto.weights_.get("best_labeler", 0) < 0.5
    assert AutoLabelModel().fit(votes, 2, gold=gold).report(votes)["cv_scoring"] == "balanced_log_loss"
    pooled = AutoLabelModel(combine="pool", scoring="log_loss").fit(votes, 2, gold=gold)
    report = pooled.report(votes)
    assert report["selected"] == "pool" and report["cv_scoring"] == "log_loss"
    assert np.isclose(sum(report["weights"].values()), 1) and set(report["weights"]) <= set(pooled.candidates)
    proba = pooled.predict_proba(votes)
    assert np.allclose(proba.sum(axis=1), 1) and np.isclose(pooled.class_prior_.sum(), 1)
    with pytest.raises(ValueError, match="combine"):
        AutoLabelModel(combine="vote")
    with pytest.raises(ValueError, match="share_power"):
        AutoLabelModel(share_power=0)


# --- bad input ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_votes_outside_class_range_are_errors(name):
    with pytest.raises(ValueError, match="outside the class range"):
        make_label_model(name).fit(np.array([[0, 3], [1, 0]]), 3)
    with pytest.raises(ValueError, match="outside the class range"):
        make_label_model(name).fit(np.array([[0, -2], [1, 0]]), 3)
    with pytest.raises(ValueError, match="soft vote"):
        make_label_model(name).fit(np.ones((4, 2, 2)) * 0.8, 2)


@pytest.mark.parametrize("name", NAMES)
def test_all_abstain_rows_get_the_prior_class(name):
    votes, _, _ = generate(n=400)
    votes[:10] = -1
    model = make_label_model(name).fit(votes, 3)
    pred = model.predict(votes)
    assert (pred[:10] == np.argmax(model.class_prior_)).all()
    assert np.isfinite(model.predict_proba(votes)).all()


@pytest.mark.parametrize("name", NAMES)
def test_labeler_that_never_votes(name):
    votes, y, _ = generate(n=400)
    votes = np.c_[votes, np.full(len(votes), -1)]
    model = make_label_model(name).fit(votes, 3)
    rep = model.report(votes)
    assert rep["labeler_accuracy"][-1] is None
    assert np.isfinite(np.array(rep["labeler_confusion"])).all()
    assert (model.predict(votes) == y).mean() > 0.75


@pytest.mark.parametrize("name", NAMES)
def test_single_class(name):
    with pytest.raises(ValueError, match=">= 2"):
        make_label_model(name).fit(np.zeros((5, 2), int), 1)
    votes = np.zeros((50, 3), int)  # two classes, every vote is class 0: predicts class 0, finite estimates
    model = make_label_model(name).fit(votes, 2)
    assert (model.predict(votes) == 0).all() and np.isfinite(model.predict_proba(votes)).all()


def test_bad_gold_and_prior_and_shapes():
    votes, _, _ = generate(n=100)
    model = DawidSkene()
    with pytest.raises(ValueError, match="one entry per item"):
        model.fit(votes, 3, gold=np.zeros(5, int))
    with pytest.raises(ValueError, match="gold labels must be in"):
        model.fit(votes, 3, gold=np.full(100, 7))
    with pytest.raises(ValueError, match="class_prior"):
        model.fit(votes, 3, class_prior=[1, 0])
    model.fit(votes, 3)
    with pytest.raises(ValueError, match="fitted on 6 labelers"):
        model.predict_proba(votes[:, :4])
    with pytest.raises(ValueError, match="unknown aggregate.method"):
        make_label_model("nope")
    with pytest.raises(ValueError, match="abstain"):
        DawidSkene(abstain="maybe")


def _copied_weak_labeler(seed=0, n=2000):
    """Three independent labelers (0.85, 0.85, 0.8 accurate) and six identical copies of a 0.6 one."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)

    def labeler(acc):
        return np.where(rng.random(n) < acc, y, 1 - y)

    weak = labeler(0.6)
    votes = np.stack([labeler(0.85), labeler(0.85), labeler(0.8)] + [weak] * 6, axis=1)
    return votes, y, ["a", "b", "c"] + ["weak-llm"] * 6


def test_snorkel_mc_families_count_copies_once():
    votes, y, families = _copied_weak_labeler()
    alone = MatrixCompletion().fit(votes, 2)
    grouped = MatrixCompletion(groups=families).fit(votes, 2)
    assert np.mean(alone.predict(votes) == y) < 0.65  # six copies outvote the three good labelers
    assert np.mean(grouped.predict(votes) == y) > 0.8
    assert np.allclose(grouped.labeler_weight_, [1, 1, 1] + [1 / 6] * 6)
    # every labeler its own family is the plain model, exactly
    plain = MatrixCompletion(groups=list(range(votes.shape[1]))).fit(votes, 2)
    assert np.array_equal(plain.predict_proba(votes), alone.predict_proba(votes))
    # auto passes the families to its snorkel_mc base
    auto = AutoLabelModel(groups=families).fit(votes, 2)
    assert np.allclose(auto.predict_proba(votes), grouped.predict_proba(votes))


def test_snorkel_mc_families_must_name_every_labeler():
    votes, _, families = _copied_weak_labeler(n=100)
    with pytest.raises(ValueError, match="one family per labeler"):
        MatrixCompletion(groups=families[:-1]).fit(votes, 2)


def test_generated_dense_votes_and_families_help_on_them():
    """pipeline/labelmodels/synthetic.py: deterministic, -1 or a class everywhere, one family per labeler; with
    the true families snorkel_mc does better than without on these sets."""
    from pipeline.labelmodels import synthetic as gen
    votes, gold, k, families = gen.generate_with_families(3, n_items=600)
    again = gen.generate(3, n_items=600)
    assert np.array_equal(votes, again[0]) and np.array_equal(gold, again[1]) and k == again[2]
    assert votes.shape == (600, len(families)) and votes.min() >= -1 and votes.max() < k
    gains = []
    for seed in range(6):
        votes, gold, k, families = gen.generate_with_families(seed, n_items=600)
        plain = np.mean(MatrixCompletion().fit(votes, k).predict(votes) == gold)
        grouped = np.mean(MatrixCompletion(groups=families).fit(votes, k).predict(votes) == gold)
        gains.append(grouped - plain)
    assert np.mean(gains) > 0


def test_vote_dependence_separates_independent_labelers_from_families():
    """Label-free: independent dense labelers leave almost no cross-covariance outside rank K - 1, families
    of labelers that share answers leave much; soft one-hot votes give the same figure as hard votes."""
    from pipeline.labelmodels import synthetic as gen
    from pipeline.labelmodels.dependence import vote_density, vote_dependence
    independent = [vote_dependence(*gen.generate_independent(seed, n_items=1000)[::2]) for seed in (0, 1, 3, 7)]
    families = [vote_dependence(*gen.generate(seed, n_items=1000)[::2]) for seed in (1, 6, 14)]
    assert max(independent) < 0.05 < min(families)
    votes, _, k = gen.generate_independent(0, n_items=400)
    soft = np.where((votes >= 0)[..., None], np.eye(k)[np.maximum(votes, 0)], 0.0)
    assert vote_dependence(soft, k) == pytest.approx(vote_dependence(votes, k))
    assert vote_density(votes, k) == pytest.approx((votes >= 0).mean())
    assert vote_dependence(np.zeros((50, 4), int), 2) == 0.0  # no covariance at all: nothing unexplained


def test_auto_uses_dawid_skene_only_for_dense_independent_labelers():
    """Without gold, `auto` picks Dawid-Skene for dense votes from independent labelers (where it beats
    snorkel_mc), snorkel_mc for families, for sparse labeling functions, and when the user names families."""
    from pipeline.labelmodels import synthetic as gen
    from pipeline.labelmodels.auto import gold_free_method
    votes, y, k = gen.generate_independent(8)
    auto = AutoLabelModel().fit(votes, k)
    assert auto.base_ == "dawid_skene" and auto.diagnostics_["dependence"] < 0.05
    acc = {name: np.mean(make_label_model(name).fit(votes, k).predict(votes) == y)
           for name in ("dawid_skene", "snorkel_mc")}
    assert np.mean(auto.predict(votes) == y) == acc["dawid_skene"] > acc["snorkel_mc"] + 0.05
    assert gold_free_method(gen.generate(1)[0], gen.generate(1)[2])[0] == "snorkel_mc"
    sparse = votes.copy()
    sparse[np.random.default_rng(0).random(votes.shape) < 0.7] = -1
    name, diagnostics = gold_free_method(sparse, k)
    assert name == "snorkel_mc" and "dependence" not in diagnostics and diagnostics["density"] < 0.5
    assert gold_free_method(votes[:, :3], k)[0] == "snorkel_mc"  # 3 labelers: nothing to test
    families = np.arange(votes.shape[1]) // 2
    assert AutoLabelModel(groups=families).fit(votes, k).base_ == "snorkel_mc"
    assert AutoLabelModel(base="snorkel_mc").fit(votes, k).base_ == "snorkel_mc"



def test_make_candidate_builds_auto_candidates_around_the_fitted_gold_free_base():
    votes, _, _ = generate(n=600, seed=2)
    gold_free = DawidSkene(temperature="auto").fit(votes, 3)
    tempered = make_candidate("dawid_skene", "dawid_skene", gold_free)
    assert isinstance(tempered, DawidSkene) and tempered.temperature == gold_free.temperature_
    assert make_candidate("dawid_skene", "snorkel_mc", gold_free).temperature == 1.0  # tempered only as the base
    corrector = make_candidate("posterior_stacker", "dawid_skene", gold_free)
    assert isinstance(corrector, PosteriorStacker) and corrector.base_model is gold_free
    assert make_candidate("snorkel_mc", "snorkel_mc", groups=[0, 0, 1, 2, 3, 4]).groups == [0, 0, 1, 2, 3, 4]
    assert isinstance(make_candidate("stacker", "snorkel_mc"), VoteStacker)
    assert isinstance(make_candidate("best_labeler", "snorkel_mc"), BestLabeler)

def test_report_gives_a_one_class_labeling_function_its_precision():
    """A labeling function that votes class 0 only: its reported accuracy is P(true = 0 | it votes), from the
    vote rates, not the prior-weighted diagonal of its confusion (which would be about the class-0 share)."""
    rng = np.random.default_rng(0)
    n = 6000
    y = rng.integers(0, 2, n)
    fires = np.where(y == 0, rng.random(n) < 0.5, rng.random(n) < 0.1)  # precision 0.5 / (0.5 + 0.1) = 0.83
    dense = [np.where(rng.random(n) < a, y, 1 - y) for a in (0.8, 0.75, 0.7)]
    votes = np.stack([np.where(fires, 0, -1)] + dense, axis=1)
    precision = np.mean(y[fires] == 0)
    ds = DawidSkene().fit(votes, 2)
    assert abs(ds.report(votes)["labeler_accuracy"][0] - precision) < 0.05
