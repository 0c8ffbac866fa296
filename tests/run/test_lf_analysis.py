"""lf-analysis: the statistics on a hand-computed vote matrix, agreement with Snorkel's LFAnalysis, bad
input, and the CLI (table and JSON) on the demo data."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from labelers.analysis import (
    label_conflict,
    label_coverage,
    label_overlap,
    lf_conflicts,
    lf_coverages,
    lf_empirical_accuracies,
    lf_overlaps,
    lf_polarities,
    lf_report,
    lf_summary,
)
from pipeline.cli import app
from tests.conftest import DEMO

# 5 items x 4 labelers; the last never votes. Gold: item 3 unknown.
L = np.array([
    [-1, 0, 0, -1],
    [-1, -1, -1, -1],
    [1, 0, -1, -1],
    [-1, 0, -1, -1],
    [0, 0, 0, -1],
])
GOLD = np.array([0, 1, 1, -1, 1])


def test_hand_computed_statistics():
    # labeler 0 votes on items 2, 4; labeler 1 on 0, 2, 3, 4; labeler 2 on 0, 4
    np.testing.assert_allclose(lf_coverages(L), [2 / 5, 4 / 5, 2 / 5, 0])
    # items with >= 2 votes: 0, 2, 4
    np.testing.assert_allclose(lf_overlaps(L), [2 / 5, 3 / 5, 2 / 5, 0])
    # items with disagreeing votes: 2 (1 vs 0)
    np.testing.assert_allclose(lf_conflicts(L), [1 / 5, 1 / 5, 0, 0])
    assert lf_polarities(L) == [[0, 1], [0], [0], []]
    assert (label_coverage(L), label_overlap(L), label_conflict(L)) == (4 / 5, 3 / 5, 1 / 5)
    acc, correct, incorrect = lf_empirical_accuracies(L, GOLD)
    # labeler 0: item 2 right, item 4 wrong; labeler 1: item 0 right, 2 and 4 wrong (3 has no gold)
    np.testing.assert_array_equal(correct, [1, 1, 1, 0])
    np.testing.assert_array_equal(incorrect, [1, 2, 1, 0])
    np.testing.assert_allclose(acc[:3], [1 / 2, 1 / 3, 1 / 2])
    assert np.isnan(acc[3])


def test_summary_and_report():
    frame = lf_summary(L, ["a", "b", "c", "never"], ["neg", "pos"], GOLD, kinds=["column"] * 4)
    assert list(frame.columns) == ["labeler", "kind", "polarity", "coverage", "overlap", "conflict", "correct",
                                   "incorrect", "gold_n", "accuracy"]
    assert frame["polarity"].tolist() == [["neg", "pos"], ["neg"], ["neg"], []]
    assert frame["gold_n"].tolist() == [2, 3, 2, 0]
    report = lf_report(L, ["a", "b", "c", "never"], ["neg", "pos"], GOLD)
    assert report["summary"] == {"items": 5, "labelers": 4, "gold_items": 4, "label_coverage": 0.8,
                                 "label_overlap": 0.6, "label_conflict": 0.2}
    assert report["labelers"][3]["accuracy"] is None and report["labelers"][1]["accuracy"] == pytest.approx(1 / 3)
    json.dumps(report)  # JSON-ready: no numpy scalars, no NaN
    assert "accuracy" not in lf_summary(L).columns  # no gold: no accuracy columns


def test_matches_snorkel_lfanalysis():
    snorkel = pytest.importorskip("snorkel.labeling")
    rng = np.random.default_rng(0)
    for _ in range(5):
        votes = rng.integers(0, 4, size=(300, 8))
        votes[rng.random(votes.shape) < 0.6] = -1
        gold = rng.integers(0, 4, size=300)
        ref = snorkel.LFAnalysis(votes)
        np.testing.assert_allclose(lf_coverages(votes), ref.lf_coverages())
        np.testing.assert_allclose(lf_overlaps(votes), ref.lf_overlaps())
        np.testing.assert_allclose(lf_conflicts(votes), ref.lf_conflicts())
        assert lf_polarities(votes) == ref.lf_polarities()
        assert label_conflict(votes) == pytest.approx(ref.label_conflict())
        assert label_overlap(votes) == pytest.approx(ref.label_overlap())
        np.testing.assert_allclose(lf_empirical_accuracies(votes, gold)[0], ref.lf_empirical_accuracies(gold))


def test_bad_input():
    with pytest.raises(ValueError, match="2-D"):
        lf_coverages(np.array([0, 1, -1]))
    with pytest.raises(ValueError, match="use -1 for abstain"):
        lf_coverages(np.array([[0, -2]]))
    with pytest.raises(ValueError, match=r"vote 2 of labeler 1 on item 0 is outside the class range \[0, 2\)"):
        lf_summary(np.array([[0, 2]]), classes=["a", "b"])
    with pytest.raises(ValueError, match="gold has 2 labels for 5 items"):
        lf_empirical_accuracies(L, [0, 1])
    with pytest.raises(ValueError, match="3 names for 4 labelers"):
        lf_summary(L, ["a", "b", "c"])


runner = CliRunner()


@pytest.fixture
def demo_run_config(tmp_path):
    """The embedded demo config (all 419 items, the YAML rules, without its LLM labeler), writing its
    run under tmp_path."""
    import yaml

    for name in ("data.csv", "lfs.yaml"):
        shutil.copy(DEMO / name, tmp_path / name)
    raw = yaml.safe_load((DEMO / "config.yaml").read_text())
    raw["output_dir"] = str(tmp_path / "runs")
    raw["label"].pop("llm", None)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(raw, sort_keys=False))
    return cfg


def test_cli_table_and_json_on_the_demo(demo_run_config, tmp_path):
    out = tmp_path / "analysis.json"
    result = runner.invoke(app, ["lf-analysis", str(demo_run_config), "--json", str(out), "--no-progress"],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    run_dir = tmp_path / "runs" / "demo"
    votes = pd.read_parquet(run_dir / "votes.parquet").drop(columns="id").to_numpy()
    gold = pd.read_parquet(run_dir / "items.parquet")["gold"].to_numpy()
    assert report["summary"]["items"] == 419 and report["summary"]["labelers"] == 14
    assert report["summary"]["gold_items"] == 419
    assert report["summary"]["gold_items_by_split"] == {"train": 251, "valid": 84, "test": 84}
    first = report["labelers"][0]
    assert first["labeler"] == "lf_sports_match_terms" and first["kind"] == "keyword"
    assert first["polarity"] == ["sports"]
    assert first["coverage"] == pytest.approx((votes[:, 0] >= 0).mean())
    assert first["gold_n"] == int(((votes[:, 0] >= 0) & (gold >= 0)).sum())
    assert first["accuracy"] == pytest.approx((votes[:, 0] == gold)[votes[:, 0] >= 0].mean())
    # the table shows every labeler with its figures
    text = result.output
    assert "14 labelers on 419 items (all, 419 with gold): coverage" in text
    for row in report["labelers"]:
        assert row["labeler"] in text
    line = next(x for x in text.splitlines() if "lf_sports_match_terms" in x)
    assert f"{first['coverage']:.3f}" in line and f"{first['accuracy']:.3f} ({first['gold_n']})" in line
    assert "note: the accuracies include 84 gold items of the test split" in text


def test_cli_on_a_run_folder_and_one_split(demo_run_config, tmp_path):
    assert runner.invoke(app, ["lf-analysis", str(demo_run_config), "--no-progress"]).exit_code == 0
    out = tmp_path / "valid.json"
    result = runner.invoke(app, ["lf-analysis", str(tmp_path / "runs" / "demo"), "--split", "valid",
                                 "--json", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["split"] == "valid" and report["summary"]["items"] == 84
    assert report["summary"]["gold_items_by_split"] == {"train": 0, "valid": 84, "test": 0}
    assert "(valid, 84 with gold)" in result.output and "note:" not in result.output


def test_cli_errors(tmp_path):
    result = runner.invoke(app, ["lf-analysis", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "no such run config or run folder" in result.output
    result = runner.invoke(app, ["lf-analysis", str(tmp_path)])
    assert result.exit_code == 2 and "votes.parquet, items.parquet, classes.json missing" in " ".join(
        result.output.split())
    result = runner.invoke(app, ["lf-analysis", str(tmp_path), "--split", "dev"])
    assert result.exit_code == 2 and "--split must be one of all, train, valid, test" in result.output
    assert "Traceback" not in result.output


def test_matches_snorkel_on_wrench_youtube():
    snorkel = pytest.importorskip("snorkel.labeling")
    from pipeline.config import parse_config
    from pipeline.data import load_items
    from tests.conftest import require_shared

    loaded = load_items(parse_config({"data": {"path": str(require_shared("wrench", "youtube")),
                                               "format": "wrench"}}).data)
    votes = loaded.frame[loaded.annotation_columns].to_numpy()
    gold = loaded.frame["gold"].to_numpy()
    ref = snorkel.LFAnalysis(votes).lf_summary(Y=gold)
    ours = lf_summary(votes, classes=loaded.classes, gold=gold)
    for theirs, mine in [("Coverage", "coverage"), ("Overlaps", "overlap"), ("Conflicts", "conflict"),
                         ("Correct", "correct"), ("Incorrect", "incorrect"), ("Emp. Acc.", "accuracy")]:
        np.testing.assert_allclose(ours[mine].to_numpy(dtype=float), ref[theirs].to_numpy(dtype=float))
