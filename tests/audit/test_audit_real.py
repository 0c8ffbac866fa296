"""The audit on the real LLM-judge / LLM-annotator sets (skipped when ../shared/datasets is absent)."""

import numpy as np
from conftest import require_shared

from pipeline.audit import load_annotations, run_audit


def test_llmbar_position_bias_and_judge_ranking():
    data = load_annotations(require_shared("judge", "llmbar", "llmbar.jsonl"))
    assert data.votes.shape == (419, 88) and data.classes == ["1", "2"] and (data.gold >= 0).all()
    result = run_audit(data, neighbors=False)
    pb = result.position_bias.set_index("judge")
    assert len(pb) == 44  # every configuration is seen in both orders
    gpt4 = pb[pb.index.str.startswith("GPT-4/")]["flip_rate"].mean()
    chatgpt = pb[pb.index.str.startswith("ChatGPT/")]["flip_rate"].mean()
    assert gpt4 < chatgpt  # GPT-4 is the more order-consistent judge
    ann = result.annotators.set_index("annotator")
    assert ann["gold_accuracy"].idxmax().startswith("GPT-4/")
    # with gold for every item the corrected accuracy is the measured one
    assert np.allclose(ann["corrected_accuracy"], ann["gold_accuracy"])


def test_babe_unparsed_answers_are_abstains():
    data = load_annotations(require_shared("llm", "babe", "zero-shot.csv"))
    assert data.votes.shape == (3021, 13) and data.classes == ["0", "1"]
    mixtral = data.annotators.index("mixtral_8x7b_label")
    assert (data.votes[:, mixtral] == -1).sum() == 18
