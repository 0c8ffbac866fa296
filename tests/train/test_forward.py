"""Loss `forward` (forward loss correction) and the noise transition estimates it trains with."""

import json

import numpy as np
import pytest
import torch

from pipeline.config import TrainConfig
from pipeline.run import run_pipeline
from pipeline.train.losses import make_loss
from pipeline.train.search import candidate_params, train_classifier
from pipeline.train.trainer import head_logits
from pipeline.train.transition import transition_from_anchors, transition_from_gold

T_TRUE = np.array([[0.4, 0.6, 0.0],  # class 0 is mostly labeled 1: a systematic confusion, not random noise
                   [0.0, 0.9, 0.1],
                   [0.1, 0.0, 0.9]])


def _noisy(gold: np.ndarray, rng) -> np.ndarray:
    return np.array([rng.choice(3, p=T_TRUE[g]) for g in gold])


# ---- the loss and the estimates (pure) ----

def test_forward_with_the_identity_is_soft_ce_and_matches_its_formula():
    logits, target = torch.randn(5, 3), torch.softmax(torch.randn(5, 3), dim=-1)
    plain = make_loss("soft_ce", 5, 3).per_item(logits, target)
    assert torch.allclose(make_loss("forward", 5, 3, transition=np.eye(3)).per_item(logits, target), plain, atol=1e-6)
    expected = -(target * torch.log(torch.softmax(logits, -1) @ torch.tensor(T_TRUE, dtype=torch.float32))).sum(-1)
    got = make_loss("forward", 5, 3, transition=T_TRUE).per_item(logits, target)
    assert torch.allclose(got, expected, atol=1e-5)


def test_forward_rejects_a_bad_transition():
    with pytest.raises(ValueError, match="rows summing to 1"):
        make_loss("forward", 5, 3, transition=[[0.5, 0.4, 0.0], [0, 1, 0], [0, 0, 1]])
    with pytest.raises(ValueError, match="K x K"):
        make_loss("forward", 5, 3, transition=np.ones((2, 3)) / 3)
    with pytest.raises(ValueError, match="3 classes"):
        make_loss("forward", 5, 2, transition=np.eye(2)).per_item(torch.randn(4, 3), torch.eye(3)[[0, 1, 2, 0]])


def test_transition_from_gold_recovers_the_noise_and_keeps_unknown_classes_clean():
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 3, 20000)
    noisy = np.eye(3)[_noisy(gold, rng)]
    np.testing.assert_allclose(transition_from_gold(noisy, gold), T_TRUE, atol=0.02)
    # items without a gold label (-1) or without a noisy label (a zero row) are not counted; a class with no
    # gold item keeps the identity row; the pseudo-counts pull a class with few items toward it
    few = transition_from_gold(np.vstack([np.eye(3)[[1, 1]], np.zeros((1, 3)), np.eye(3)[[2]]]),
                               np.array([0, 0, 0, -1]), smoothing=1.0)
    np.testing.assert_allclose(few, [[1 / 3, 2 / 3, 0], [0, 1, 0], [0, 0, 1]])
    with pytest.raises(ValueError, match=r"in \[-1, 2\]"):
        transition_from_gold(noisy[:2], np.array([0, 3]))
    with pytest.raises(ValueError, match="must be"):
        transition_from_gold(noisy[:2], gold[:3])


def test_transition_from_anchors_reads_the_rows_at_the_most_typical_items():
    rng = np.random.default_rng(1)
    clean = rng.dirichlet(np.ones(3) * 0.3, 5000)  # clean posteriors, some nearly pure
    estimate = transition_from_anchors(clean @ T_TRUE, quantile=1.0)
    np.testing.assert_allclose(estimate, T_TRUE, atol=0.05)
    np.testing.assert_allclose(transition_from_anchors(clean @ T_TRUE).sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="N > 0"):
        transition_from_anchors(np.zeros((0, 3)))


def test_the_default_grid_tries_gold_only_on_gold_valid_labels():
    assert candidate_params(TrainConfig(loss="forward", valid_labels="gold")) == [
        {"transition": "gold"}, {"transition": "anchors"}]
    assert candidate_params(TrainConfig(loss="forward", valid_labels="noisy")) == [{"transition": "anchors"}]
    assert candidate_params(TrainConfig(loss="forward", loss_params={"transition": "gold"})) == [{"transition": "gold"}]


# ---- training (real MiniLM head on generated sentence vectors) ----

@pytest.fixture(scope="module")
def blobs():
    """Three well-separated classes of 384-d vectors (MiniLM's width); train labels through T_TRUE."""
    rng = np.random.default_rng(2)
    centers = rng.normal(0, 1, (3, 384)).astype(np.float32)

    def draw(n):
        gold = rng.integers(0, 3, n)
        return (centers[gold] + rng.normal(0, 1.5, (n, 384))).astype(np.float32), gold
    (x, y), (xv, yv), (xt, yt) = draw(600), draw(150), draw(300)
    return dict(x=x, noisy=_noisy(y, rng), xv=xv, yv=yv, noisy_v=_noisy(yv, rng), xt=xt, yt=yt)


def _train(blobs, cfg, **kw):
    n, nv = len(blobs["x"]), len(blobs["xv"])
    return train_classifier(["x"] * n, np.eye(3)[blobs["noisy"]], np.ones(n), ["a", "b", "c"], cfg, valid_texts=["x"] * nv,
                     valid_labels=blobs["yv"], seed=0, progress=False, features=(blobs["x"], blobs["xv"]), **kw)


def _accuracy(clf, blobs):
    return float((head_logits(clf, blobs["xt"]).argmax(1) == blobs["yt"]).mean())


def test_forward_with_the_gold_transition_undoes_a_systematic_confusion(blobs):
    cfg = dict(mode="head", head_epochs=15, valid_labels="gold", loss_search="off", patience=None)
    plain = _train(blobs, TrainConfig(loss="soft_ce", **cfg))
    forward = _train(blobs, TrainConfig(loss="forward", loss_params={"transition": "gold"}, **cfg),
                     valid_targets=np.eye(3)[blobs["noisy_v"]])
    assert forward.transition.shape == (3, 3) and abs(forward.transition[0, 1] - 0.6) < 0.15
    assert _accuracy(plain, blobs) < 0.8  # soft CE learns "class 0 is b"
    assert _accuracy(forward, blobs) > 0.95
    assert forward.loss_params == {"transition": "gold"}


def test_coteaching_on_the_forward_loss(blobs):
    cfg = TrainConfig(loss="coteaching", loss_params={"base": "forward", "transition": "gold", "forget_rate": 0.1},
                      mode="head", head_epochs=15, valid_labels="gold", loss_search="off", patience=None)
    clf = _train(blobs, cfg, valid_targets=np.eye(3)[blobs["noisy_v"]])
    assert clf.transition.shape == (3, 3) and _accuracy(clf, blobs) > 0.95


def test_forward_search_and_anchors_without_gold(blobs):
    cfg = TrainConfig(loss="forward", mode="head", head_epochs=10, valid_labels="gold", patience=None)
    clf = _train(blobs, cfg, valid_targets=np.eye(3)[blobs["noisy_v"]])
    assert [r["params"] for r in clf.search] == [{"transition": "gold"}, {"transition": "anchors"}]
    assert _accuracy(clf, blobs) > 0.9
    noisy_valid = TrainConfig(loss="forward", mode="head", head_epochs=10, valid_labels="noisy", loss_search="off")
    anchors = _train(blobs, noisy_valid)  # auto: no gold, so the anchor-point estimate
    np.testing.assert_allclose(anchors.transition.sum(axis=1), 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="gold needs gold valid labels"):
        _train(blobs, noisy_valid.model_copy(update={"loss_params": {"transition": "gold"}}))
    with pytest.raises(ValueError, match="auto, gold or anchors"):
        _train(blobs, noisy_valid.model_copy(update={"loss_params": {"transition": "clean"}}))


def test_pipeline_run_with_forward_records_its_transition(demo_config):
    """The train stage hands forward the valid items' refined labels; the matrix used is saved with the model."""
    cfg = demo_config(train={"mode": "head", "head_epochs": 5, "loss": "forward", "valid_labels": "gold"})
    run = run_pipeline(cfg, progress=False)
    meta = json.loads((run / "model" / "labelpipe.json").read_text())
    summary = json.loads((run / ".state" / "train.json").read_text())["summary"]
    assert meta["loss"] == "forward" and meta["loss_params"]["transition"] in ("gold", "anchors")
    assert [r["params"]["transition"] for r in summary["loss_search"]] == ["gold", "anchors"]
    transition = np.array(meta["transition"])
    assert transition.shape == (4, 4) and np.allclose(transition.sum(axis=1), 1.0, atol=1e-5)
    assert summary["transition"] == meta["transition"]


def test_full_mode_forward_estimates_anchors_from_a_fine_tuned_noisy_model():
    """Full fine-tuning: the anchors come from a whole soft-CE fine-tuning on the texts (no cached states)."""
    from tests.train.test_train import CLASSES, TEXTS, VALID, VALID_Y, Y

    cfg = TrainConfig(mode="full", loss="forward", epochs=1, max_length=32, batch_size=12, valid_labels="noisy")
    clf = train_classifier(TEXTS, np.eye(3)[Y], np.ones(len(Y)), CLASSES, cfg, valid_texts=VALID, valid_labels=VALID_Y,
                    seed=0, progress=False)
    assert clf.search == [] and clf.transition.shape == (3, 3)  # full mode: no search; auto without gold: anchors
    np.testing.assert_allclose(clf.transition.sum(axis=1), 1.0, atol=1e-6)
    assert len(clf.history) == 1 and np.isfinite(clf.history[0]["train_loss"])


def test_head_forward_with_anchors_encodes_the_texts_once(monkeypatch):
    """Head mode without precomputed states: the anchor model and the forward model share one encoder pass."""
    import pipeline.train.trainer as train
    from tests.train.test_train import CLASSES, TEXTS, VALID, VALID_Y, Y

    calls = []
    real = train.encoder_states
    monkeypatch.setattr(train, "encoder_states", lambda model, tok, texts, *a, **k: calls.append(len(texts)) or
                        real(model, tok, texts, *a, **k))
    cfg = TrainConfig(mode="head", loss="forward", head_epochs=3, max_length=32, valid_labels="noisy",
                      loss_search="off")
    clf = train_classifier(TEXTS, np.eye(3)[Y], np.ones(len(Y)), CLASSES, cfg, valid_texts=VALID, valid_labels=VALID_Y,
                    seed=0, progress=False)
    assert calls == [len(TEXTS), len(VALID)]  # train states, valid states: once each
    assert clf.transition.shape == (3, 3) and clf.embed_seconds > 0
