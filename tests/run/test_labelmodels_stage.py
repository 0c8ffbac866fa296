"""The aggregate stage with the label models: labelmodel.json contents, gold seeds, bad gold files."""

import json

import numpy as np
import pytest

from pipeline.run import run_pipeline


def test_aggregate_stage_writes_estimates(demo_config):
    run_dir = run_pipeline(demo_config(aggregate={"method": "dawid_skene", "params": {"smoothing": 0.5}}),
                           progress=False, until="aggregate")
    rep = json.loads((run_dir / "labelmodel.json").read_text())
    m = len(rep["labelers"])
    assert rep["method"] == "dawid_skene" and rep["n_gold_seed"] == 0
    conf = np.array(rep["labeler_confusion"])
    assert conf.shape == (m, 4, 4) and np.allclose(conf.sum(axis=2), 1)
    accs = [a for a in rep["labeler_accuracy"] if a is not None]
    assert accs and all(0 <= a <= 1 for a in accs)
    assert len(rep["class_prior"]) == 4


def test_gold_seed_from_valid_split_and_gold_file(demo_config, tmp_path):
    import pandas as pd

    items = pd.read_csv(tmp_path / "items.csv")
    train = items[items["split"] == "train"].head(3)
    gold_file = tmp_path / "gold.csv"
    pd.DataFrame({"id": train["id"], "label": train["label"]}).to_csv(gold_file, index=False)
    run_dir = run_pipeline(demo_config(aggregate={"method": "auto", "gold_seed": 5, "gold_path": str(gold_file)}),
                           progress=False, until="aggregate")
    rep = json.loads((run_dir / "labelmodel.json").read_text())
    assert rep["n_gold_seed"] == 8 and "selected" in rep
    # the demo's keyword rules are sparse: the gold-free base is snorkel_mc, with the density it was chosen by
    assert rep["base"] == "snorkel_mc" and 0 < rep["density"] < 0.5 and "dependence" not in rep


def test_gold_of_30_items_mixes_the_candidates_and_reports_the_weights(demo_config, tmp_path):
    import pandas as pd

    items = pd.read_csv(tmp_path / "items.csv")
    train = items[items["split"] == "train"].head(30)
    gold_file = tmp_path / "gold.csv"
    pd.DataFrame({"id": train["id"], "label": train["label"]}).to_csv(gold_file, index=False)
    run_dir = run_pipeline(demo_config(aggregate={"method": "auto", "gold_path": str(gold_file)}), progress=False,
                           until="aggregate")
    rep = json.loads((run_dir / "labelmodel.json").read_text())
    assert rep["n_gold_seed"] == 30 and rep["selected"] == "bootstrap"
    assert set(rep["cv_scores"]) == {"snorkel_mc", "dawid_skene", "majority", "stacker", "best_labeler",
                                     "posterior_stacker"}
    assert rep["weights"] and set(rep["weights"]) <= set(rep["cv_scores"])
    assert sum(rep["weights"].values()) == pytest.approx(1.0)


def test_gold_file_with_unknown_ids_is_an_error(demo_config, tmp_path):
    gold_file = tmp_path / "gold.csv"
    gold_file.write_text("id,label\nno-such-id,food\n")
    with pytest.raises(ValueError, match="do not exist in the data"):
        run_pipeline(demo_config(aggregate={"gold_path": str(gold_file)}), progress=False, until="aggregate")


def test_gold_file_with_unknown_label_is_an_error(demo_config, tmp_path):
    import pandas as pd

    first = pd.read_csv(tmp_path / "items.csv")["id"].iloc[0]
    gold_file = tmp_path / "gold.csv"
    gold_file.write_text(f"id,label\n{first},pizza\n")
    with pytest.raises(ValueError, match="not in the class list"):
        run_pipeline(demo_config(aggregate={"gold_path": str(gold_file)}), progress=False, until="aggregate")


def test_labeler_families_from_config():
    from pipeline.run.stages import labeler_families

    labelers = [{"name": "kw", "kind": "labeling_function"},
                {"name": "llm-a", "kind": "llm", "identity": {"model": "gemma"}},
                {"name": "llm-b", "kind": "llm", "identity": {"model": "gemma"}},
                {"name": "llm-c", "kind": "llm", "identity": {"model": "qwen"}}]
    names = [e["name"] for e in labelers]
    assert labeler_families(labelers, names, "none") is None
    fam = labeler_families(labelers, names, "model")
    assert fam[1] == fam[2] and len(set(fam)) == 3
    fam = labeler_families(labelers, names, {"kw": "rules", "llm-c": "rules"})
    assert fam[0] == fam[3] and len(set(fam)) == 3
    with pytest.raises(ValueError, match="do not exist: nobody"):
        labeler_families(labelers, names, {"nobody": "x"})


def test_aggregate_stage_with_families(demo_config):
    from pipeline.config import ConfigError

    run_dir = run_pipeline(demo_config(aggregate={"method": "snorkel_mc"}), progress=False, until="label")
    votes_names = [e["name"] for e in json.loads((run_dir / "labelers.json").read_text())]
    families = {votes_names[0]: "pair", votes_names[1]: "pair"}
    run_dir = run_pipeline(demo_config(aggregate={"method": "snorkel_mc", "families": families}), progress=False,
                           until="aggregate")
    rep = json.loads((run_dir / "labelmodel.json").read_text())
    assert rep["families"][0] == rep["families"][1] and len(set(rep["families"])) == len(votes_names) - 1
    with pytest.raises(ValueError, match="needs method snorkel_mc or auto"):
        run_pipeline(demo_config(aggregate={"method": "majority", "families": families}), progress=False,
                     until="aggregate")
    with pytest.raises(ConfigError):
        run_pipeline(demo_config(aggregate={"families": "by-magic"}), progress=False, until="aggregate")
