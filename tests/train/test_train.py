import json
import time

import numpy as np
import pytest
import torch

from pipeline.calibration import scaled_proba
from pipeline.config import TrainConfig, parse_config
from pipeline.encoders import sentence_pooling, torch_device
from pipeline.errors import ConfigError
from pipeline.train.losses import coteaching_select, make_loss
from pipeline.train.search import train_classifier
from pipeline.train.trainer import (
    encoder_states,
    head_logits,
    load_classifier,
    load_trained,
    predict_logits,
    predict_proba,
    save_classifier,
)

CLASSES = ["sports", "tech", "food"]
TEXTS = ["the team won the match", "a great goal in the final", "the striker scored twice", "the coach praised the defence",
         "the new phone has a fast chip", "the laptop runs linux well", "this software update fixes bugs",
         "a faster graphics card", "pasta with tomato sauce", "bake the bread slowly", "a bowl of spicy noodles",
         "fresh salad with olive oil"]
Y = np.repeat([0, 1, 2], 4)
VALID = ["the goalkeeper saved a penalty", "the tablet has a bright screen", "grilled fish with lemon"]
VALID_Y = np.array([0, 1, 2])


# ---- losses (pure tensors) ----

def _batch(seed=0, b=6, k=3):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, k, generator=g)
    target = torch.eye(k)[torch.randint(0, k, (b,), generator=g)]
    return logits, target, torch.ones(b)


def test_ce_and_soft_ce_agree_on_one_hot_targets():
    logits, target, w = _batch()
    ce = make_loss("ce", 6, 3)(logits, target, w)
    soft = make_loss("soft_ce", 6, 3)(logits, target, w)
    assert ce.item() == pytest.approx(soft.item(), rel=1e-6)
    assert ce.item() == pytest.approx(torch.nn.functional.cross_entropy(logits, target.argmax(1)).item(), rel=1e-6)


def test_gce_and_sce_match_their_formulas():
    logits, target, w = _batch(1)
    p = torch.softmax(logits, -1)
    py = (p * target).sum(-1)
    gce = make_loss("gce", 6, 3, q=0.7).per_item(logits, target)
    torch.testing.assert_close(gce, (1 - py ** 0.7) / 0.7)
    sce = make_loss("sce", 6, 3, alpha=0.1, beta=1.0).per_item(logits, target)
    ce = -torch.log(py)
    rce = 4.0 * (1 - py)  # -sum_k p_k log t_k with log 0 clipped to -4
    torch.testing.assert_close(sce, 0.1 * ce + rce)
    with pytest.raises(ValueError, match="q must be"):
        make_loss("gce", 6, 3, q=0)
    with pytest.raises(ValueError, match="loss_params for 'sce'"):
        make_loss("sce", 6, 3, bogus=1)


def test_elr_keeps_per_item_state_and_needs_indices():
    logits, target, w = _batch(2)
    elr = make_loss("elr", 10, 3, beta=0.7, lam=3.0)
    with pytest.raises(ValueError, match="index"):
        elr(logits, target, w)
    index = torch.arange(6) + 2
    loss = elr(logits, target, w, index)
    assert torch.isfinite(loss)
    assert elr.state_[:2].abs().sum() == 0 and elr.state_[8:].abs().sum() == 0  # untouched items
    expected = 0.3 * torch.softmax(logits, -1).clamp(1e-4, 1 - 1e-4)
    torch.testing.assert_close(elr.state_[2:8], expected / expected.sum(-1, keepdim=True) * 0.3, rtol=1e-4,
                               atol=1e-5)


def test_coteaching_select_swaps_small_loss_items():
    la = torch.tensor([0.1, 5.0, 0.2, 3.0])
    lb = torch.tensor([4.0, 0.1, 0.3, 0.2])
    for_a, for_b = coteaching_select(la, lb, forget_rate=0.5)
    assert sorted(for_a.tolist()) == [1, 3]  # B's small-loss items train A
    assert sorted(for_b.tolist()) == [0, 2]


def test_sentence_pooling_follows_the_sentence_transformers_modules(tmp_path):
    assert sentence_pooling("default") == "mean"  # all-MiniLM-L6-v2's 1_Pooling/config.json
    assert sentence_pooling("default", "cls") == "cls"
    (tmp_path / "plain").mkdir()
    assert sentence_pooling(str(tmp_path / "plain")) == "mean"  # no sentence-transformers modules
    st = tmp_path / "st"
    (st / "1_Pooling").mkdir(parents=True)
    (st / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
    (st / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True,
                                                            "pooling_mode_mean_tokens": False}))
    assert sentence_pooling(str(st)) == "cls"
    (st / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_sqrt_len_tokens": True}))
    with pytest.raises(ValueError, match="set train.pooling"):
        sentence_pooling(str(st))
    assert sentence_pooling(str(st), "max") == "max"


def test_config_rejects_unknown_loss_and_mode():
    with pytest.raises(ConfigError, match="train.loss"):
        parse_config({"data": {"path": "x.csv"}, "train": {"loss": "focal"}})
    with pytest.raises(ConfigError, match="train.mode"):
        parse_config({"data": {"path": "x.csv"}, "train": {"mode": "half"}})
    with pytest.raises(ConfigError, match="train.pooling"):
        parse_config({"data": {"path": "x.csv"}, "train": {"pooling": "sum"}})


# ---- training with the real MiniLM ----

def _head_cfg(**kw):
    base = dict(mode="head", head_epochs=15, max_length=32, batch_size=4, head_lr=3e-3, patience=None)
    base.update(kw)
    return TrainConfig(**base)


def test_head_mode_learns_is_fast_reproducible_and_calibrated():
    targets = np.eye(3)[Y]
    a = train_classifier(TEXTS, targets, np.ones(len(Y)), CLASSES, _head_cfg(), valid_texts=VALID, valid_labels=VALID_Y,
                  seed=3, progress=False)
    b = train_classifier(TEXTS, targets, np.ones(len(Y)), CLASSES, _head_cfg(), valid_texts=VALID, valid_labels=VALID_Y,
                  seed=3, progress=False)
    pa = predict_proba(a, TEXTS, progress=False)
    np.testing.assert_allclose(pa, predict_proba(b, TEXTS, progress=False), atol=1e-6)
    assert (pa.argmax(1) == Y).mean() >= 0.9
    assert a.seconds_per_epoch < 1.0
    assert len(a.history) == 15 and a.best_epoch is not None and a.temperature > 0
    np.testing.assert_allclose(pa.sum(1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("pooling", ["auto", "cls", "max"])
def test_head_logits_on_cached_states_equal_the_full_model(pooling):
    clf = train_classifier(TEXTS, np.eye(3)[Y], np.ones(len(Y)), CLASSES, _head_cfg(head_epochs=2, pooling=pooling), seed=0,
                    progress=False)
    assert clf.model.config.pooling == ("mean" if pooling == "auto" else pooling)
    states = encoder_states(clf.model, clf.tokenizer, VALID, max_length=32, progress=False)
    np.testing.assert_allclose(head_logits(clf, states), predict_logits(clf, VALID, progress=False), atol=1e-4)


def test_vector_scaling_is_saved_and_predict_uses_it(tmp_path):
    clf = train_classifier(TEXTS, np.eye(3)[Y], np.ones(len(Y)), CLASSES, _head_cfg(head_epochs=3, calibration="vector"),
                    valid_texts=TEXTS, valid_labels=Y, seed=0, progress=False)
    assert clf.calibration == "vector" and clf.vector_scale.shape == (3,) and clf.vector_bias.shape == (3,)
    logits = predict_logits(clf, VALID, progress=False)
    expected = scaled_proba(logits * clf.vector_scale + clf.vector_bias)
    np.testing.assert_allclose(predict_proba(clf, VALID, progress=False), expected, atol=1e-6)
    save_classifier(clf, tmp_path / "model")
    back = load_trained(tmp_path / "model")
    assert back.calibration == "vector" and back.temperature == pytest.approx(clf.temperature)
    np.testing.assert_allclose(predict_proba(back, VALID, progress=False), expected, atol=1e-5)
    no_food = train_classifier(TEXTS, np.eye(3)[Y], np.ones(len(Y)), CLASSES, _head_cfg(head_epochs=2, calibration="vector"),
                        valid_texts=TEXTS[:8], valid_labels=Y[:8], seed=0, progress=False)
    assert no_food.calibration == "temperature"  # a class without valid labels: keep the temperature


def test_early_stopping_and_weight_zero_items():
    weights = np.ones(len(Y))
    weights[:2] = 0
    clf = train_classifier(TEXTS, np.eye(3)[Y], weights, CLASSES, _head_cfg(head_epochs=30, patience=2), valid_texts=VALID,
                    valid_labels=VALID_Y, seed=0, progress=False)
    assert len(clf.history) < 30  # valid accuracy saturates, then 2 epochs without improvement stop it
    assert clf.best_epoch == len(clf.history) - 2
    with pytest.raises(ValueError, match="weight 0"):
        train_classifier(TEXTS, np.eye(3)[Y], np.zeros(len(Y)), CLASSES, _head_cfg(), progress=False)


@pytest.mark.parametrize("loss", ["gce", "sce", "elr", "coteaching"])
def test_robust_losses_train_in_head_mode(loss):
    clf = train_classifier(TEXTS, np.eye(3)[Y], np.ones(len(Y)), CLASSES, _head_cfg(loss=loss), valid_texts=VALID,
                    valid_labels=VALID_Y, seed=0, progress=False)
    assert (predict_proba(clf, TEXTS, progress=False).argmax(1) == Y).mean() >= 0.75


def test_full_mode_one_epoch_with_soft_labels():
    soft = np.full((len(Y), 3), 0.1)
    soft[np.arange(len(Y)), Y] = 0.8
    start = time.perf_counter()
    cfg = TrainConfig(mode="full", loss="soft_ce", epochs=1, max_length=32, batch_size=12)
    clf = train_classifier(TEXTS, soft, np.ones(len(Y)), CLASSES, cfg, valid_texts=VALID, valid_labels=VALID_Y, seed=0,
                    progress=False)
    assert len(clf.history) == 1 and np.isfinite(clf.history[0]["train_loss"])
    assert clf.model.config.id2label == dict(enumerate(CLASSES))
    assert predict_proba(clf, VALID, progress=False).shape == (3, 3)
    assert time.perf_counter() - start < 120


def test_load_classifier_is_seeded():
    import transformers

    transformers.set_seed(0)
    a, _ = load_classifier("default", CLASSES)
    transformers.set_seed(0)
    b, _ = load_classifier("default", CLASSES)
    torch.testing.assert_close(a.classifier.weight, b.classifier.weight)


def test_weights_scale_each_items_loss():
    logits, target, _ = _batch(3)
    weight = torch.tensor([1.0, 0.0, 2.0, 0.5, 1.0, 0.0])
    for name in ("ce", "soft_ce", "gce", "sce"):
        loss = make_loss(name, 6, 3)
        per = loss.per_item(logits, target)
        torch.testing.assert_close(loss(logits, target, weight), (per * weight).sum() / weight.sum())


def test_choose_valid_labels_auto_takes_gold_only_when_there_is_enough():
    from pipeline.run.stages import choose_valid_labels

    targets = np.eye(3)[[0, 1, 2, 0]]
    weights = np.array([1.0, 1.0, 0.0, 1.0])
    no_gold = -np.ones(4, int)
    labels, source = choose_valid_labels("auto", no_gold, targets, weights)
    assert source == "noisy" and labels.tolist() == [0, 1, -1, 0]  # uncovered items left out
    gold = np.array([2, 2, -1, 1])
    assert choose_valid_labels("auto", gold, targets, weights, min_gold=3)[1] == "gold"
    assert choose_valid_labels("auto", gold, targets, weights, min_gold=4)[1] == "noisy"
    assert choose_valid_labels("noisy", gold, targets, weights)[1] == "noisy"
    labels, source = choose_valid_labels("gold", gold, targets, weights, min_gold=99)
    assert source == "gold" and labels.tolist() == [2, 2, -1, 1]
    with pytest.raises(ValueError, match="no valid item has a gold label"):
        choose_valid_labels("gold", no_gold, targets, weights)


def test_encoder_states_keep_the_input_order_and_are_the_sentence_transformers_embedding():
    from sentence_transformers import SentenceTransformer

    from pipeline.encoders import resolve_encoder

    model, tok = load_classifier("default", CLASSES, mode="head")
    assert model.config.pooling == "mean"  # all-MiniLM-L6-v2's own pooling
    texts = VALID + ["a", "a much longer sentence about the weather and the sea and the mountains"]
    one = encoder_states(model, tok, texts, batch_size=1, max_length=32, progress=False)
    np.testing.assert_allclose(encoder_states(model, tok, texts, batch_size=2, max_length=32, progress=False), one,
                               atol=1e-4)
    st = SentenceTransformer(resolve_encoder("default"), device="cpu")
    st.max_seq_length = 32
    normalized = one / np.linalg.norm(one, axis=1, keepdims=True)
    np.testing.assert_allclose(normalized, st.encode(texts, convert_to_numpy=True), atol=1e-5)


def test_full_mode_and_coteaching_are_repeatable_with_a_seed():
    cfg = TrainConfig(mode="full", loss="gce", epochs=1, max_length=32, batch_size=6)
    runs = [train_classifier(TEXTS, np.eye(3)[Y], np.ones(len(Y)), CLASSES, cfg, valid_texts=VALID, valid_labels=VALID_Y,
                      seed=5, progress=False) for _ in range(2)]
    np.testing.assert_allclose(predict_logits(runs[0], VALID, progress=False),
                               predict_logits(runs[1], VALID, progress=False), atol=1e-5)
    assert runs[0].temperature == pytest.approx(runs[1].temperature, rel=1e-4)
    co = [train_classifier(TEXTS, np.eye(3)[Y], np.ones(len(Y)), CLASSES, _head_cfg(loss="coteaching", head_epochs=4),
                    valid_texts=VALID, valid_labels=VALID_Y, seed=2, progress=False) for _ in range(2)]
    np.testing.assert_allclose(predict_logits(co[0], VALID, progress=False),
                               predict_logits(co[1], VALID, progress=False), atol=1e-5)


def test_mixed_precision_bf16_on_cpu_after_a_full_precision_run():
    """The only mixed-precision path a CPU can run; accelerate's process-wide state must accept the change."""
    targets = np.eye(3)[Y]
    train_classifier(TEXTS, targets, np.ones(len(Y)), CLASSES, _head_cfg(head_epochs=1, mixed_precision="no"),
              progress=False)
    clf = train_classifier(TEXTS, targets, np.ones(len(Y)), CLASSES, _head_cfg(head_epochs=3, mixed_precision="bf16"),
                    valid_texts=VALID, valid_labels=VALID_Y, progress=False)
    assert next(clf.model.parameters()).dtype == torch.float32 and np.isfinite(clf.history[-1]["train_loss"])
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="fp16 needs a GPU"):
            train_classifier(TEXTS, targets, np.ones(len(Y)), CLASSES, _head_cfg(mixed_precision="fp16"), progress=False)


@pytest.mark.parametrize("mode", ["head", "full"])
def test_bf16_trained_model_predicts_like_its_saved_copy(tmp_path, mode):
    """accelerate wraps the trained module's forward in autocast; the returned classifier must predict (and be
    calibrated) in fp32 like its saved copy. Found on an H200, where bf16 is the default; a CPU runs bf16 too."""
    cfg = TrainConfig(mode=mode, epochs=1, head_epochs=3, max_length=32, batch_size=4, mixed_precision="bf16")
    clf = train_classifier(TEXTS, np.eye(3)[Y], np.ones(len(Y)), CLASSES, cfg, valid_texts=VALID, valid_labels=VALID_Y,
                    seed=0, progress=False)
    save_classifier(clf, tmp_path / "model")
    back = load_trained(tmp_path / "model")  # on the GPU where there is one, like the trained model
    assert next(back.model.parameters()).device.type == next(clf.model.parameters()).device.type == torch_device()
    np.testing.assert_allclose(predict_logits(back, VALID, progress=False),
                               predict_logits(clf, VALID, progress=False), atol=1e-5)
    on_cpu = load_trained(tmp_path / "model", device="cpu")
    assert next(on_cpu.model.parameters()).device.type == "cpu"
