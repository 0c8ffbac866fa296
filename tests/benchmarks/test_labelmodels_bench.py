"""The label-model benchmarks: the smoke run (every method on wrench/youtube, output in the issue's JSON shape,
with the anchors' libraries installed), the paired bootstrap, and the rules benchmark on one generated set."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import load_benchmark, require_shared


def test_benchmark_smoke(tmp_path):
    pytest.importorskip("snorkel")
    pytest.importorskip("crowdkit")
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
    comparisons = json.loads(Path(out).read_text())["comparisons"]
    assert {c["versus"] for c in comparisons} == {"anchor:snorkel", "anchor:snorkel_mv", "anchor:crowdkit_ds",
                                                  "anchor:crowdkit_glad"}
    for c in comparisons:
        low, high = c["ci95"]
        assert low <= c["difference"] <= high


def test_paired_bootstrap_interval():
    bench = load_benchmark("labelmodels")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    same = np.where(rng.random(400) < 0.8, y, 1 - y)
    assert bench.paired_bootstrap(y, same, same, None) == (0.0, 0.0)  # identical predictions: no difference
    better = np.where(rng.random(400) < 0.5, y, same)  # fixes about half of `same`'s mistakes
    low, high = bench.paired_bootstrap(y, better, same, None)
    assert 0 < low < bench.score(y, better, None) - bench.score(y, same, None) < high
    low, high = bench.paired_bootstrap(y, same, better, 1)  # F1 of class 1, reversed order
    assert high < 0


def test_rules_benchmark_smoke(tmp_path):
    """benchmarks/labelmodels_rules.py on one generated set and one gold draw: the default rule and the asked one."""
    import json

    rules = load_benchmark("labelmodels_rules")
    out = tmp_path / "rules.json"
    rules.main(["--sets", "1", "--draws", "1", "--rules", "select-balanced_log_loss-r1-se0", "--json", str(out)])
    summary = json.loads(out.read_text())["summary"]
    assert set(summary) == {"bootstrap-balanced_log_loss-r1", "select-balanced_log_loss-r1-se0"}
    assert summary["bootstrap-balanced_log_loss-r1"]["wins"] == 0
    assert 0 < summary["select-balanced_log_loss-r1-se0"]["mean"] <= 1
    assert rules.rule_params("select-log_loss-r3-snorkel_mc-se0.5-f10") == {
        "combine": "select", "scoring": "log_loss", "repeats": 3, "base": "snorkel_mc", "min_gain_se": 0.5,
        "folds": 10}
