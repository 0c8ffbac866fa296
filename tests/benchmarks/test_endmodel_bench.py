"""The end-model benchmark's smoke run: head mode on a slice of semeval-mixtral, output in the issue's JSON shape."""

import json
import os
import subprocess
import sys

import numpy as np
from conftest import ROOT, SHARED, require_shared


def test_endmodel_benchmark_smoke(tmp_path):
    require_shared("llm", "semeval-mixtral-fewshot")
    out, feat = tmp_path / "end.json", tmp_path / "feat"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "endmodel.py"), "--datasets", "semeval-mixtral",
           "--losses", "ce", "forward", "--seeds", "1", "--limit", "60", "--head-epochs", "3", "--json", str(out),
           "--features", str(feat), "--data-root", str(SHARED)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run(cmd, check=True, env=env, capture_output=True, timeout=300)
    rows = json.loads(out.read_text())["results"]
    assert [(r["loss"], r["labels"]) for r in rows] == [("ce", "aggregated"), ("forward", "aggregated"), ("ce", "gold")]
    for r in rows:
        assert r["dataset"] == "semeval-mixtral" and r["mode"] == "head" and 0 <= r["score"] <= 1
        assert 0 <= r["ece"] <= 1 and 0 <= r["ece_calibrated"] <= 1 and r["seconds_per_epoch"] > 0
    assert rows[1]["loss_params"]["transition"] in ("gold", "anchors")
    # the encoder states (sentence + entity pair: the texts are marked) are cached under a name keyed by the
    # texts, and read back on a rerun
    (cache,) = feat.glob("states-mean+entity-128-*.npz")
    with np.load(cache) as z:
        assert z["train"].shape == (60, 5 * 384)
    again = subprocess.run(cmd, check=True, env=env, capture_output=True, text=True, timeout=300)
    assert "encoder states read from" in again.stdout
