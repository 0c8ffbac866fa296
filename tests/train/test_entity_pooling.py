"""Head mode's entity pooling (`train.entity_pooling`, `pooled_model.entity_pool`) on relation texts marked with
<e1>/<e2>: pure tensor checks, then the real MiniLM head trained, saved and reloaded."""

import json

import numpy as np
import pytest
import torch

from pipeline.config import TrainConfig
from pipeline.data import mark_entities
from pipeline.train.pooled_model import entity_pool, find_first
from pipeline.train.search import train_classifier
from pipeline.train.trainer import (
    encoder_states,
    load_classifier,
    load_trained,
    marker_token_variants,
    predict_logits,
    save_classifier,
    uses_entity_pooling,
)

MARKERS = [[[7, 1]], [[8, 1]], [[7, 2]], [[8, 2]]]  # toy token ids of <e1>, </e1>, <e2>, </e2> (one variant each)


def test_find_first_gives_the_earliest_variant_and_its_length():
    ids = torch.tensor([[5, 7, 1, 7, 1], [7, 2, 0, 0, 0], [1, 1, 1, 1, 1], [9, 9, 6, 7, 1]])
    position, size = find_first(ids, [[7, 1]])
    assert position.tolist() == [1, -1, -1, 3] and size.tolist() == [2, 0, 0, 2]
    position, size = find_first(ids, [[7, 1], [6, 7, 1], [7, 2]])  # several ways to write one marker
    assert position.tolist() == [1, 0, -1, 2] and size.tolist() == [2, 2, 0, 3]
    assert find_first(ids[:, :1], [[7, 1]])[0].tolist() == [-1, -1, -1, -1]  # shorter than the sequence


def test_marker_variants_cover_a_byte_level_bpe_tokenizer():
    """Byte-level BPE (RoBERTa, GPT-2) writes " <e1>" with the space inside its first token: the markers must
    still be found, whether after a space or glued to a word."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    corpus = ["the cup holds tea", "Ann married Bob in May", "a <e1>red</e1> cup and <e2>blue</e2> tea"] * 20
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(corpus, vocab_size=300, min_frequency=1, show_progress=False)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer)
    variants = [marker_token_variants(tok, m) for m in ("<e1>", "</e1>", "<e2>", "</e2>")]
    assert len(variants[0]) >= 2  # alone and after a space differ in byte-level BPE
    for text in ("Ann <e1>married</e1> Bob <e2>in</e2> May", "x<e1>Ann</e1>, <e2>Bob</e2>."):
        ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
        (s1, n1), (e1, _) = find_first(ids, variants[0]), find_first(ids, variants[1])
        (s2, _), (e2, _) = find_first(ids, variants[2]), find_first(ids, variants[3])
        assert 0 <= s1 < e1 < s2 < e2
        inside = tok.decode(ids[0, s1 + n1:e1].tolist()).strip()
        assert inside in ("married", "Ann")


def test_entity_pool_reads_start_states_and_span_means():
    # row 0: [CLS] <e1> a b </e1> <e2> c </e2> ; row 1: no markers ; row 2: <e1> opened, its closing cut off
    ids = torch.tensor([[0, 7, 1, 30, 31, 8, 1, 7, 2, 32, 8, 2],
                        [0, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40],
                        [0, 7, 1, 30, 31, 32, 33, 34, 35, 36, 37, 38]])
    hidden = torch.arange(3 * 12 * 2, dtype=torch.float32).reshape(3, 12, 2)
    sentence = torch.full((3, 2), -1.0)
    out = entity_pool(hidden, ids, sentence, MARKERS)
    assert out.shape == (3, 10)
    h = hidden[0]
    torch.testing.assert_close(out[0], torch.cat([sentence[0], h[1], h[3:5].mean(0), h[7], h[9]]))
    torch.testing.assert_close(out[1], sentence[1].repeat(5))  # nothing marked: the sentence vector everywhere
    torch.testing.assert_close(out[2], sentence[2].repeat(5))  # e1 unclosed, e2 missing


def test_entity_pooling_setting_resolves_on_the_train_texts():
    marked = [mark_entities("the cup holds tea", (4, 7), (14, 17))] * 3
    plain = ["the cup holds tea"] * 3
    head = TrainConfig(mode="head")
    assert uses_entity_pooling(head, marked) and not uses_entity_pooling(head, plain)
    assert not uses_entity_pooling(head, marked[:1] + plain)  # most texts unmarked: off
    assert uses_entity_pooling(TrainConfig(mode="head", entity_pooling="on"), plain)
    assert not uses_entity_pooling(TrainConfig(mode="head", entity_pooling="off"), marked)
    assert uses_entity_pooling(TrainConfig(mode="full"), marked)  # full mode too (the encoder is fine-tuned)
    with pytest.raises(ValueError, match="entity_markers"):
        from pipeline.train.pooled_model import PooledEncoderConfig
        PooledEncoderConfig(entity_markers=[[[1]], [[2]]])
    with pytest.raises(ValueError, match="entity_markers"):
        PooledEncoderConfig(entity_markers=[[[1]], [[2]], [[3]], [[]]])


# The same sentences, labelled by which pair is marked: class 0 = (person, tool), class 1 = (person, food).
SENTENCES = [("the chef cut the bread with a knife", "chef", "knife", "bread"),
             ("my aunt sliced the cheese with a wire", "aunt", "wire", "cheese"),
             ("the baker scored the loaf with a blade", "baker", "blade", "loaf"),
             ("a farmer peeled the apple with a peeler", "farmer", "peeler", "apple"),
             ("the cook stirred the soup with a spoon", "cook", "spoon", "soup"),
             ("his uncle cracked the nuts with a hammer", "uncle", "hammer", "nuts"),
             ("the girl spread the butter with a spatula", "girl", "spatula", "butter"),
             ("our host carved the turkey with a saw", "host", "saw", "turkey")]


def _marked(sentence: str, first: str, second: str) -> str:
    a, b = sentence.index(first), sentence.index(second)
    return mark_entities(sentence, (a, a + len(first)), (b, b + len(second)))


def _relation_data():
    texts, labels = [], []
    for sentence, person, tool, food in SENTENCES:
        texts += [_marked(sentence, person, tool), _marked(sentence, person, food)]
        labels += [0, 1]
    return texts, np.array(labels)


def test_entity_head_learns_what_the_sentence_vector_cannot_and_reloads(tmp_path, caplog):
    """Each sentence appears once per class, so the label lives in which words are marked: the entity head
    separates the pairs; the model saved in Hugging Face format gives the same logits through transformers."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    texts, y = _relation_data()
    classes = ["tool", "food"]
    train, valid = np.arange(12), np.arange(12, 16)
    targets = np.eye(2)[y[train]]
    cfg = TrainConfig(mode="head", head_epochs=60, head_lr=1e-2, batch_size=4, max_length=32, patience=None,
                      loss="soft_ce")
    clf = train_classifier([texts[i] for i in train], targets, np.ones(len(train)), classes, cfg,
                    valid_texts=[texts[i] for i in valid], valid_labels=y[valid], seed=0, progress=False)
    assert clf.model.config.entity_markers is not None and clf.model.head.classifier.in_features == 5 * 384
    logits = predict_logits(clf, [texts[i] for i in valid], progress=False)
    assert (logits.argmax(1) == y[valid]).mean() == 1.0
    states = encoder_states(clf.model, clf.tokenizer, [texts[i] for i in valid], max_length=32, progress=False)
    assert states.shape == (4, 5 * 384)

    folder = tmp_path / "model"
    save_classifier(clf, folder)
    assert json.loads((folder / "config.json").read_text())["entity_markers"] == clf.model.config.entity_markers
    np.testing.assert_allclose(predict_logits(load_trained(folder), [texts[i] for i in valid], progress=False),
                               logits, atol=1e-5)
    auto = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        via_transformers = auto(**tok([texts[i] for i in valid], padding=True, return_tensors="pt")).logits.numpy()
    np.testing.assert_allclose(via_transformers, logits, atol=1e-5)

    # `labelpipe predict` warns when the texts lack the markers the model was trained with
    import logging

    import pandas as pd

    from pipeline.train.predict import predict_file

    pd.DataFrame({"text": [texts[12], "the chef cut the bread with a knife"]}).to_csv(tmp_path / "in.csv", index=False)
    with caplog.at_level(logging.WARNING, logger="labelpipe"):
        out = predict_file(folder, tmp_path / "in.csv", tmp_path / "out.csv", progress=False)
    assert len(out) == 2 and "1 of 2 texts have no <e1>" in caplog.text

    plain, _ = load_classifier("default", classes, "head")  # sentence pooling only: the pairs look alike
    pairs = encoder_states(plain, clf.tokenizer, texts[:2], max_length=32, progress=False)
    entity = encoder_states(clf.model, clf.tokenizer, texts[:2], max_length=32, progress=False)
    plain_gap = np.linalg.norm(pairs[0] - pairs[1])
    entity_gap = np.linalg.norm(entity[0, 384:] - entity[1, 384:]) / 2  # per 384-dim block pair
    assert entity_gap > 3 * plain_gap


def test_full_mode_fine_tunes_the_encoder_under_the_entity_head(tmp_path):
    """Full mode with entity pooling trains the pooled-encoder class end to end (encoder weights move), and the
    saved model predicts the same through labelpipe's loader."""
    texts, y = _relation_data()
    cfg = TrainConfig(mode="full", epochs=2, lr=1e-4, batch_size=8, max_length=32, patience=None, loss="soft_ce")
    clf = train_classifier(texts[:12], np.eye(2)[y[:12]], np.ones(12), ["tool", "food"], cfg, valid_texts=texts[12:],
                    valid_labels=y[12:], seed=0, progress=False)
    assert type(clf.model).__name__ == "PooledEncoderForSequenceClassification"
    assert clf.model.config.entity_markers is not None and clf.model.head.classifier.in_features == 5 * 384
    fresh, _ = load_classifier("default", ["tool", "food"], "full", entity_pooling=True)
    moved = [name for name, p in clf.model.encoder.named_parameters()
             if not torch.equal(p.cpu(), dict(fresh.encoder.named_parameters())[name])]
    assert moved and not any(name.startswith("pooler.") for name in moved)  # fine-tuned; its unused pooler frozen
    assert not any(p.requires_grad for p in clf.model.encoder.pooler.parameters())
    save_classifier(clf, tmp_path / "model")
    np.testing.assert_allclose(predict_logits(load_trained(tmp_path / "model"), texts[12:], progress=False),
                               predict_logits(clf, texts[12:], progress=False), atol=1e-5)
