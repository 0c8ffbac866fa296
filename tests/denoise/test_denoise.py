"""The denoisers (none, knn, confident-learning, sidyp), the noisy-validation guard and the stage glue."""

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.denoise import DENOISERS, DenoiseInputs, Refined, run_denoiser
from pipeline.denoise.guard import guard
from pipeline.denoise.sidyp import Refiner, alpha_bar, reverse_sample, sidyp_denoise
from pipeline.neighbors.dynamics import candidate_sets, clean_by_dynamics, training_dynamics
from pipeline.neighbors.index import knn_label_distribution

SMALL_SIDYP = {"epochs": 30, "batch_size": 64, "hidden": 64, "n_samples": 2, "infer_samples": 8, "dyn_epochs": 4, "n_models": 1,
               "min_steps": 0}


def noisy_problem(n=400, dim=16, n_classes=3, noise=0.3, seed=0):
    """Generated clusters with uniformly flipped labels, split 70/15/15, and the kNN prior built the way
    the neighbors stage builds it (clean pool by training dynamics). Returns (inputs, gold)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_classes, dim))
    gold = rng.integers(0, n_classes, n)
    x = centres[gold] + 0.6 * rng.standard_normal((n, dim))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    noisy = np.where(rng.random(n) < noise, (gold + rng.integers(1, n_classes, n)) % n_classes, gold)
    split = np.array(["train"] * int(0.7 * n) + ["valid"] * int(0.15 * n) + ["test"] * (n - int(0.85 * n)))
    proba = np.eye(n_classes)[noisy]
    eligible = split != "test"
    dyn = training_dynamics(x, noisy, split == "train", n_classes, epochs=4, hidden=64, seed=seed)
    clean = clean_by_dynamics(dyn, eligible, 0.5)
    knn = knn_label_distribution(x, proba, clean, k=10)
    cands = candidate_sets(knn, labels=noisy, clean=clean)
    inputs = DenoiseInputs(proba=proba, covered=np.ones(n, bool), knn_proba=knn, candidates=cands.weights,
                           certain=cands.certain, embeddings=x, split=split, seed=seed, dynamics=dyn)
    return inputs, gold


@pytest.fixture(scope="module")
def problem():
    return noisy_problem()


def label_acc(refined: Refined, gold, mask):
    keep = mask & (refined.weight > 0)
    return np.mean(refined.proba.argmax(1)[keep] == gold[keep])


def test_registry_and_unknown_name(problem):
    inputs, _ = problem
    assert {"none", "knn", "confident-learning", "sidyp"} <= set(DENOISERS)
    with pytest.raises(ValueError, match="unknown denoise.method 'magic'"):
        run_denoiser("magic", inputs)


def test_confident_learning_prune_and_relabel(problem):
    inputs, gold = problem
    train = inputs.split == "train"
    noisy = inputs.proba.argmax(1)
    pruned = run_denoiser("confident-learning", inputs, action="prune")
    flagged = (pruned.weight == 0) & train
    assert pruned.info["flagged"] > 0
    assert np.mean(noisy[flagged] != gold[flagged]) > 0.7  # the flagged labels are mostly wrong
    assert label_acc(pruned, gold, train) > np.mean(noisy[train] == gold[train]) + 0.1
    relabelled = run_denoiser("confident-learning", inputs, action="relabel")
    assert relabelled.info["changed"] > 0
    assert label_acc(relabelled, gold, train) > np.mean(noisy[train] == gold[train]) + 0.1
    with pytest.raises(ValueError, match="action must be 'prune' or 'relabel'"):
        run_denoiser("confident-learning", inputs, action="burn")


def test_sidyp_refines_towards_gold_and_is_seeded(problem):
    inputs, gold = problem
    train = inputs.split == "train"
    noisy = inputs.proba.argmax(1)
    a = sidyp_denoise(inputs, **SMALL_SIDYP)
    b = sidyp_denoise(inputs, **SMALL_SIDYP)
    np.testing.assert_array_equal(a.proba, b.proba)
    labelled = inputs.split != "test"
    np.testing.assert_allclose(a.proba[labelled].sum(1), 1.0, atol=1e-6)
    # a distribution from several stochastic samples, not a copy of one
    assert ((a.proba[labelled] > 0) & (a.proba[labelled] < 1)).any()
    assert label_acc(a, gold, train) > np.mean(noisy[train] == gold[train]) + 0.1
    assert a.info["refiner_parameters"] < 200_000
    other = sidyp_denoise(DenoiseInputs(**{**inputs.__dict__, "seed": 1}), **SMALL_SIDYP)
    assert not np.array_equal(other.proba, a.proba)


def test_sidyp_keeps_certain_candidates_ensembles_and_falls_back(problem):
    inputs, gold = problem
    labelled = inputs.split != "test"
    sure = labelled & inputs.certain
    one = sidyp_denoise(inputs, **{**SMALL_SIDYP, "epochs": 10})
    np.testing.assert_array_equal(one.proba[sure], inputs.candidates[sure])
    assert one.info["kept_certain"] == sure.sum() and one.info["refined"] == (labelled & ~inputs.certain).sum()
    two = sidyp_denoise(inputs, **{**SMALL_SIDYP, "epochs": 10, "n_models": 2})
    assert len(two.info["best_valid_agreement"]) == 2 and not np.array_equal(two.proba, one.proba)
    strict = sidyp_denoise(inputs, **{**SMALL_SIDYP, "epochs": 10, "min_confidence": 1.0})
    unsure = labelled & ~inputs.certain
    noisy = inputs.proba.argmax(1)
    changed = strict.proba[unsure].argmax(1) != noisy[unsure]
    assert strict.info["kept_noisy"] > 0 and (strict.proba[unsure][changed].max(1) == 1.0).all()
    with pytest.raises(ValueError, match="n_models must be >= 1"):
        sidyp_denoise(inputs, n_models=0)
    with pytest.raises(ValueError, match="min_confidence must be in"):
        sidyp_denoise(inputs, min_confidence=1.5)


def test_sidyp_computes_dynamics_when_absent(problem):
    inputs, gold = problem
    bare = DenoiseInputs(**{**inputs.__dict__, "dynamics": None})
    out = sidyp_denoise(bare, **SMALL_SIDYP)
    train = inputs.split == "train"
    assert label_acc(out, gold, train) > np.mean(inputs.proba.argmax(1)[train] == gold[train])


def test_reverse_sampling_is_stochastic_and_schedule_endpoints():
    torch.manual_seed(0)
    model = Refiner(4, 8, 0, hidden=16)
    cond = torch.randn(256, 8 + 4)
    gen = torch.Generator().manual_seed(0)
    first = reverse_sample(model, cond, 4, 5.0, 10, gen)
    second = reverse_sample(model, cond, 4, 5.0, 10, gen)
    assert (first != second).any()
    assert alpha_bar(torch.tensor([0.0])).item() == pytest.approx(1.0)
    assert alpha_bar(torch.tensor([1.0])).item() < 1e-4


def test_guard_steps_aside_for_a_harmful_denoiser(problem):
    inputs, _ = problem
    rng = np.random.default_rng(0)
    scrambled = Refined(np.eye(3)[rng.integers(0, 3, len(inputs.proba))], np.ones(len(inputs.proba)), {})
    out = guard(inputs, scrambled, tolerance=0.01)
    assert out.info["stepped_aside"] and out.info["guard_refined"] < out.info["guard_raw"]
    np.testing.assert_array_equal(out.proba, inputs.proba)
    kept = guard(inputs, Refined(inputs.proba.copy(), np.ones(len(inputs.proba)), {}), tolerance=0.01)
    assert not kept.info["stepped_aside"]
    # collapsing every label onto one class is caught too (the classifier is then a constant)
    collapsed = guard(inputs, Refined(np.eye(3)[np.zeros(len(inputs.proba), int)], np.ones(len(inputs.proba)), {}))
    assert collapsed.info["stepped_aside"] and collapsed.info["guard_refined"] is not None
    assert collapsed.info["guard_kept"] < 0.5


def test_guard_does_not_favour_the_raw_labels_systematic_errors():
    """The labeler calls most of class 2 "1"; a denoiser that fixes it is not judged against those errors."""
    from pipeline.denoise.guard import kept_label_agreement

    rng = np.random.default_rng(1)
    n, n_classes = 900, 3
    centres = rng.standard_normal((n_classes, 16)) * 1.5
    gold = rng.integers(0, n_classes, n)
    x = centres[gold] + 0.7 * rng.standard_normal((n, 16))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    raw = np.where((gold == 2) & (rng.random(n) < 0.6), 1, gold)
    split = np.array(["train", "valid", "test"])[np.arange(n) % 3]
    fixed = gold.copy()  # an oracle denoiser: every label right
    ones = np.ones(n)
    fair = kept_label_agreement(x, raw, ones, fixed, ones, split)
    assert fair["refined"] >= fair["raw"] - 0.01 and 0.5 < fair["kept"] < 1
    inputs = DenoiseInputs(proba=np.eye(n_classes)[raw], covered=np.ones(n, bool), knn_proba=np.eye(n_classes)[raw],
                           candidates=np.eye(n_classes)[raw], certain=np.ones(n, bool), embeddings=x, split=split)
    out = guard(inputs, Refined(np.eye(n_classes)[fixed], ones, {}), tolerance=0.01)
    assert not out.info["stepped_aside"]


def test_denoise_stage_with_sidyp_and_dynamics(demo_config):
    from pipeline.run import run_pipeline

    cfg = demo_config(neighbors={"clean_by": "dynamics", "dynamics_epochs": 3},
                      denoise={"method": "sidyp", "params": SMALL_SIDYP})
    run_dir = run_pipeline(cfg, progress=False, until="denoise")
    assert (run_dir / "dynamics.npz").exists()
    refined = pd.read_parquet(run_dir / "refined.parquet")
    probs = refined[[c for c in refined.columns if c.startswith("r_")]].to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)
    state = (run_dir / ".state" / "denoise.json").read_text()
    assert "changes_right" in state and "stepped_aside" in state


def test_harmful_needs_a_loss_above_tolerance_and_noise():
    from pipeline.denoise.guard import harmful

    assert harmful({"raw": 0.80, "refined": 0.70, "stderr": 0.05}, 0.01)
    assert not harmful({"raw": 0.80, "refined": 0.70, "stderr": 0.07}, 0.01)  # within 1.645 standard errors
    assert not harmful({"raw": 0.80, "refined": 0.795, "stderr": 0.0}, 0.01)  # within the tolerance
    assert not harmful({"raw": None, "refined": 0.5, "stderr": None}, 0.01)
