"""The label-model benchmark's smoke run: every method on wrench/youtube, output in the issue's JSON shape."""

import json
from pathlib import Path

import pytest
from conftest import load_benchmark, require_shared

pytest.importorskip("snorkel")
pytest.importorskip("crowdkit")


def test_benchmark_smoke(tmp_path):
    require_shared("wrench", "youtube")
    bench = load_benchmark("labelmodels")
    out = tmp_path / "lm.json"
    bench.main(["--smoke", "--json", str(out)])
    rows = json.loads(Path(out).read_text())["results"]
    methods = {r["method"] for r in rows}
    assert {"ours:default", "anchor:snorkel", "anchor:snorkel_mv", "anchor:crowdkit_ds", "anchor:crowdkit_glad",
            "anchor:best_single"} <= methods
    assert {r["gold_seed"] for r in rows} == {0, 50}
    for r in rows:
        assert set(r) == {"dataset", "method", "gold_seed", "metric", "score", "fit_seconds"}
        assert r["dataset"] == "wrench/youtube" and r["metric"] == "accuracy" and 0 <= r["score"] <= 1
