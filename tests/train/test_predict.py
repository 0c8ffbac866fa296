import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.errors import InputError, LabelpipeError
from pipeline.run import run_pipeline
from pipeline.train.predict import predict_file, resolve_model_dir

CLASSES = ["sports", "technology", "food", "weather"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A head-mode pipeline run on a slice of the demo data (shared by the tests of this file)."""
    from pipeline.config import parse_config
    from tests.conftest import DEMO

    tmp = tmp_path_factory.mktemp("run")
    data = pd.read_csv(DEMO / "data.csv")
    quota = {"train": 12, "valid": 4, "test": 5}
    parts = [g.head(quota[split]) for (split, _), g in data.groupby(["split", "label"])]
    pd.concat(parts).to_csv(tmp / "items.csv", index=False)
    cfg = parse_config({"name": "t", "output_dir": str(tmp / "runs"), "seed": 0,
                        "data": {"path": str(tmp / "items.csv"), "classes": CLASSES},
                        "label": {"labeling_functions": [str(DEMO / "lfs.py")]},
                        "train": {"mode": "head", "head_epochs": 10, "batch_size": 16, "max_length": 32,
                                  "loss": "gce", "loss_grid": {"q": [0.7, 0.3]}}})
    return run_pipeline(cfg, progress=False)


def test_run_writes_metrics_before_after_calibration_and_report(trained_run):
    metrics = json.loads((trained_run / "metrics.json").read_text())
    test = metrics["test"]
    for key in ("accuracy", "macro_f1", "ece", "brier"):
        assert 0 <= test[key] <= 1 + 1e-9 and 0 <= test["uncalibrated"][key] <= 1 + 1e-9
    assert test["accuracy"] == test["uncalibrated"]["accuracy"]  # temperature keeps the argmax
    assert test["temperature"] > 0 and "stages" in metrics and "timings" in metrics
    report = (trained_run / "report.html").read_text()
    assert "<svg" in report and "after calibration" in report and "Brier" in report
    meta = json.loads((trained_run / "model" / "labelpipe.json").read_text())
    assert meta["classes"] == CLASSES and meta["temperature"] == pytest.approx(test["temperature"])
    assert meta["loss"] == "gce" and meta["loss_params"]["q"] in (0.7, 0.3)  # head mode searched the grid
    assert "loss_params" in report and "search_seconds" in report and "select_by" in report
    train = json.loads((trained_run / ".state" / "train.json").read_text())["summary"]
    assert train["valid_labels"] == "gold" and train["select_by"] == "nll"  # auto: NLL on gold valid labels
    assert all("valid_nll" in h for h in train["history"])


def test_transformers_loads_the_saved_head_model_with_its_code(trained_run):
    """Head mode saves a pooled-encoder classifier with its code file and auto_map: the Auto class gives the
    same logits as labelpipe's own loader."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from pipeline.train.trainer import load_trained, predict_logits

    folder = trained_run / "model"
    config = json.loads((folder / "config.json").read_text())
    assert config["pooling"] == "mean" and (folder / config["auto_map"]["AutoModelForSequenceClassification"]
                                            .split(".")[0]).with_suffix(".py").is_file()
    model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True).eval()
    tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    assert [model.config.id2label[i] for i in range(4)] == CLASSES
    texts = ["a sunny day with rain later", "the new phone is fast"]
    with torch.no_grad():
        logits = model(**tok(texts, padding=True, return_tensors="pt")).logits.numpy()
    np.testing.assert_allclose(logits, predict_logits(load_trained(folder), texts, progress=False), atol=1e-5)


def test_predict_reproduces_the_training_time_calibrated_probabilities(trained_run, tmp_path):
    items = pd.read_parquet(trained_run / "items.parquet")
    expected = pd.read_parquet(trained_run / "predictions.parquet")  # head logits on cached states / T
    src = tmp_path / "in.csv"
    items[["id", "text"]].to_csv(src, index=False)
    result = CliRunner().invoke(app, ["predict", str(trained_run), "--input", str(src), "--output",
                                      str(tmp_path / "out.csv"), "--no-progress"])
    assert result.exit_code == 0, result.output
    out = pd.read_csv(tmp_path / "out.csv")
    assert list(out["id"].astype(str)) == list(expected["id"].astype(str))
    np.testing.assert_allclose(out[[f"p_{c}" for c in CLASSES]].to_numpy(),
                               expected[[f"p_{k}" for k in range(len(CLASSES))]].to_numpy(), atol=1e-5)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_predict_round_trips_each_format(trained_run, tmp_path, suffix):
    frame = pd.DataFrame({"id": ["a", "b", "c"], "body": ["the match ended in a draw", "a new laptop chip",
                                                           "heavy snow tomorrow"]})
    src, dst = tmp_path / f"in{suffix}", tmp_path / f"out{suffix}"
    {".csv": lambda: frame.to_csv(src, index=False), ".jsonl": lambda: frame.to_json(src, orient="records", lines=True),
     ".parquet": lambda: frame.to_parquet(src)}[suffix]()
    out = predict_file(trained_run, src, dst, text_column="body", progress=False)
    back = {".csv": pd.read_csv, ".jsonl": lambda p: pd.read_json(p, lines=True), ".parquet": pd.read_parquet}[suffix](dst)
    assert list(back["id"]) == ["a", "b", "c"] and set(back["pred"]) <= set(CLASSES)
    proba = back[[f"p_{c}" for c in CLASSES]].to_numpy()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(back["confidence"], proba.max(axis=1), rtol=1e-5)
    assert len(out) == 3


def test_predict_cli_and_model_folder(trained_run, tmp_path):
    src = tmp_path / "in.csv"
    pd.DataFrame({"text": ["sunny and warm", "pizza night"]}).to_csv(src, index=False)
    result = CliRunner().invoke(app, ["predict", str(trained_run / "model"), "--input", str(src),
                                      "--output", str(tmp_path / "out.csv"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(tmp_path / "out.csv")) == 2


def test_predict_bad_input_errors(trained_run, tmp_path):
    src = tmp_path / "in.csv"
    pd.DataFrame({"body": ["x"]}).to_csv(src, index=False)
    with pytest.raises(InputError, match="text column not found; columns are: body"):
        predict_file(trained_run, src, tmp_path / "o.csv", progress=False)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InputError, match="empty"):
        predict_file(trained_run, empty, tmp_path / "o.csv", progress=False)
    header_only = tmp_path / "header.csv"
    header_only.write_text("text\n")
    with pytest.raises(InputError, match="no rows"):
        predict_file(trained_run, header_only, tmp_path / "o.csv", progress=False)
    blank = tmp_path / "blank.jsonl"
    blank.write_text('{"text": "ok"}\n{"text": "  "}\n')
    with pytest.raises(InputError, match="row 2.*empty text"):
        predict_file(trained_run, blank, tmp_path / "o.jsonl", progress=False)
    with pytest.raises(InputError, match="unknown file type"):
        predict_file(trained_run, src, tmp_path / "o.xlsx", progress=False)
    assert not (tmp_path / "o.csv").exists()


def test_predict_rejects_folders_that_are_not_ours(tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text("{}")
    with pytest.raises(LabelpipeError, match="not a labelpipe run or model folder"):
        resolve_model_dir(tmp_path / "other")
    with pytest.raises(LabelpipeError, match="not found"):
        resolve_model_dir(tmp_path / "missing")
    src = tmp_path / "in.csv"
    pd.DataFrame({"text": ["x"]}).to_csv(src, index=False)
    result = CliRunner().invoke(app, ["predict", str(tmp_path / "other"), "--input", str(src),
                                      "--output", str(tmp_path / "o.csv")])
    assert result.exit_code == 2 and "not a labelpipe run or model folder" in " ".join(result.output.split())
