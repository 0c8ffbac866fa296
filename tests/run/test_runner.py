"""End to end with the real MiniLM: artifacts, metrics, stage skipping, and resume after a kill."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import yaml

from pipeline.run import run_pipeline

ARTIFACTS = ["items.parquet", "votes.parquet", "labelers.json", "aggregate.parquet", "labelmodel.json",
             "embeddings.npy", "neighbors.parquet", "refined.parquet", "model/config.json",
             "predictions.parquet", "metrics.json", "config.yaml", "run.log"]


def stage_states(run_dir):
    return {p.stem: json.loads(p.read_text())["fingerprint"] for p in (run_dir / ".state").glob("*.json")}


def test_end_to_end_then_skip_then_partial_rerun(demo_config):
    cfg = demo_config()
    run_dir = run_pipeline(cfg, progress=False)
    for name in ARTIFACTS:
        assert (run_dir / name).exists(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    agg = metrics["stages"]["aggregate"]
    assert 0 < agg["coverage"] <= 1 and 0 <= agg["label_accuracy"] <= 1
    assert 0 <= metrics["stages"]["denoise"]["label_accuracy"] <= 1
    assert set(metrics["test"]) >= {"accuracy", "macro_f1", "ece"}
    assert set(metrics["timings"]) >= {"label", "aggregate", "neighbors", "denoise", "train", "evaluate"}
    items = pd.read_parquet(run_dir / "items.parquet")
    assert len(items) == 4 * 19
    emb = np.load(run_dir / "embeddings.npy")
    assert emb.shape == (len(items), 384) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-4)
    preds = pd.read_parquet(run_dir / "predictions.parquet")
    np.testing.assert_allclose(preds[[f"p_{k}" for k in range(4)]].sum(axis=1), 1, atol=1e-5)

    # unchanged inputs and config: every stage is skipped, artifacts untouched
    mtimes = {n: (run_dir / n).stat().st_mtime_ns for n in ARTIFACTS[:-3]}
    run_pipeline(cfg, progress=False)
    assert {n: (run_dir / n).stat().st_mtime_ns for n in ARTIFACTS[:-3]} == mtimes
    assert "skipped (inputs and config unchanged)" in (run_dir / "run.log").read_text()

    # a denoise change re-runs denoise, train and evaluate only
    before = stage_states(run_dir)
    run_pipeline(demo_config(denoise={"method": "none"}), progress=False)
    after = stage_states(run_dir)
    assert [s for s in after if after[s] != before[s]] == sorted(["denoise", "train", "evaluate"], key=list(after).index)
    assert (run_dir / "votes.parquet").stat().st_mtime_ns == mtimes["votes.parquet"]


def test_killed_mid_stage_resumes_without_redoing_finished_stages(demo_config, tmp_path):
    cfg = demo_config(train={"epochs": 30})  # long enough to be killed inside the train stage
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    run_dir = cfg.run_dir
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "run", str(config_path), "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 240
        while not (run_dir / ".state" / "denoise.json").exists():
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.time() < deadline, "denoise stage did not finish in time"
            time.sleep(0.2)
        time.sleep(2.0)  # now inside the train stage
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not (run_dir / ".state" / "train.json").exists()
    finished = {s: (run_dir / ".state" / f"{s}.json").stat().st_mtime_ns for s in
                ["label", "aggregate", "neighbors", "denoise"]}
    votes_mtime = (run_dir / "votes.parquet").stat().st_mtime_ns

    resumed = run_pipeline(demo_config(train={"epochs": 1}), progress=False)
    log = (resumed / "run.log").read_text().split("run t ->")[-1]
    for stage in finished:
        assert f"stage {stage:<9} skipped" in log
        assert (run_dir / ".state" / f"{stage}.json").stat().st_mtime_ns == finished[stage]
    assert "stage train     running" in log
    assert (run_dir / "votes.parquet").stat().st_mtime_ns == votes_mtime
    assert (run_dir / "metrics.json").exists()


def test_skipped_bad_rows_are_counted_in_the_run_log(tmp_path):
    from pipeline.config import parse_config

    (tmp_path / "items.csv").write_text("id,text,gpt\n1,good,pos\n2,,neg\n3,bad,maybe\n4,fine,neg\n")
    cfg = parse_config({"output_dir": str(tmp_path / "runs"), "data": {
        "path": str(tmp_path / "items.csv"), "classes": ["pos", "neg"], "annotation_columns": ["gpt"],
        "on_error": "skip"}})
    run_dir = run_pipeline(cfg, progress=False, until="aggregate")
    log = (run_dir / "run.log").read_text()
    assert "skipped 2 bad rows" in log and "row 2, field 'text': empty text" in log
    assert pd.read_parquet(run_dir / "votes.parquet")["gpt"].tolist() == [0, 1]
    assert not (run_dir / "neighbors.parquet").exists()


def test_repeated_runs_in_one_process_add_one_console_handler(tmp_path):
    import logging

    from rich.logging import RichHandler

    from pipeline.config import parse_config

    (tmp_path / "items.csv").write_text("id,text,gpt\n1,good,pos\n2,bad,neg\n")
    cfg = parse_config({"output_dir": str(tmp_path / "runs"), "data": {
        "path": str(tmp_path / "items.csv"), "classes": ["pos", "neg"], "annotation_columns": ["gpt"]}})
    for _ in range(3):
        run_pipeline(cfg, progress=False, until="label")
    handlers = logging.getLogger("labelpipe").handlers
    assert sum(isinstance(h, RichHandler) for h in handlers) == 1
    assert not any(isinstance(h, logging.FileHandler) for h in handlers)
