"""Declarative (YAML) keyword and regex labeling functions: schema, errors, safety, and vectorized ==
per-item application on real data."""

import numpy as np
import pandas as pd
import pytest
import yaml

from labelers import (
    LabelingFunction,
    apply_labeling_functions,
    load_labeling_functions,
    load_rules,
    parse_rules,
)
from pipeline.config import parse_config
from pipeline.errors import ConfigError
from pipeline.run import run_pipeline
from tests.conftest import DEMO, require_shared

CLASSES = ["ham", "spam"]
ITEMS = pd.DataFrame({
    "id": ["a", "b", "c", "d", "e", "f"],
    "text": ["Subscribe to my channel!", "subscribed already", "great SONG", "win $$$ now", None,
             "see http://x.io"],
    "title": ["x", "FREE gift", "song", None, "free", "y"],
})


def rules(*entries) -> list:
    return parse_rules({"labeling_functions": list(entries)}, source="t.yaml")


def votes_of(entry) -> list[int]:
    return apply_labeling_functions(rules(entry), ITEMS, CLASSES, progress=False)[:, 0].tolist()


def per_item(lfs, items, classes) -> np.ndarray:
    """The same functions, called one item at a time (the Python-function path)."""
    plain = [LabelingFunction(lf.name, lf.__call__) for lf in lfs]
    return apply_labeling_functions(plain, items, classes, progress=False)


def test_keyword_whole_word_and_case():
    kw = {"name": "kw", "type": "keyword", "class": "spam", "keywords": ["subscribe", "song"]}
    assert votes_of(kw) == [1, -1, 1, -1, -1, -1]  # whole word, any case; missing text abstains
    assert votes_of({**kw, "whole_word": False}) == [1, 1, 1, -1, -1, -1]  # "subscribed" matches a substring
    assert votes_of({**kw, "case_sensitive": True}) == [-1, -1, -1, -1, -1, -1]  # "Subscribe", "SONG"
    # keywords whose edges are not word characters still match as whole tokens
    assert votes_of({**kw, "keywords": ["$$$", "http://"]}) == [-1, -1, -1, 1, -1, 1]


def test_regex_and_field():
    assert votes_of({"name": "re", "type": "regex", "class": "spam", "pattern": r"my\s+chan"}) == [1, -1, -1, -1, -1, -1]
    assert votes_of({"name": "re", "type": "regex", "class": "spam", "pattern": "FREE",
                     "case_sensitive": True, "field": "title"}) == [-1, 1, -1, -1, -1, -1]
    assert votes_of({"name": "re", "type": "regex", "class": "ham", "pattern": "free",
                     "field": "title"}) == [-1, 0, -1, -1, 0, -1]


def test_numbers_are_read_as_strings():
    lf = rules({"name": "kw", "type": "keyword", "class": 1, "keywords": [2024]})[0]
    assert lf.label == "1" and lf.regex.search("in 2024!")


def test_invalid_regex_names_file_and_function():
    with pytest.raises(ConfigError, match=r"t\.yaml: labeling function 're_bad': invalid regex '\(unclosed'"):
        rules({"name": "re_bad", "type": "regex", "class": "spam", "pattern": "(unclosed"})


def test_unknown_class_names_the_function():
    entry = {"name": "kw_x", "type": "keyword", "class": "eggs", "keywords": ["x"]}
    with pytest.raises(ConfigError, match=r"labeling function 'kw_x': class 'eggs' is not in the class list"):
        parse_rules({"labeling_functions": [entry]}, source="t.yaml", classes=CLASSES)
    with pytest.raises(ValueError, match=r"'kw_x': class 'eggs' is not in the class list"):  # found at apply too
        apply_labeling_functions(rules(entry), ITEMS, CLASSES, progress=False)


def test_unknown_key_and_bad_type_are_clear_errors():
    with pytest.raises(ConfigError, match=r"labeling function 1 'kw', key 'keyword': unknown key; allowed keys: "
                                          r"case_sensitive, class, field, keywords, name, type, whole_word"):
        rules({"name": "kw", "type": "keyword", "class": "spam", "keyword": ["x"]})
    with pytest.raises(ConfigError, match=r"labeling function 1 'k': 'type' must be 'keyword' or 'regex'"):
        rules({"name": "k", "type": "lambda", "class": "spam"})
    with pytest.raises(ConfigError, match=r"labeling function 2 'r', key 'pattern': Field required"):
        rules({"name": "k", "type": "keyword", "class": "spam", "keywords": ["a"]},
              {"name": "r", "type": "regex", "class": "spam"})
    with pytest.raises(ConfigError, match=r"'labeling_functions'"):
        parse_rules([{"name": "k"}], source="t.yaml")
    with pytest.raises(ConfigError, match=r"unknown key; allowed keys: labeling_functions"):
        parse_rules({"lfs": []}, source="t.yaml")
    with pytest.raises(ConfigError, match=r"'dup': the name is used twice"):
        rules(*[{"name": "dup", "type": "regex", "class": "spam", "pattern": "a"}] * 2)


def test_code_execution_is_rejected(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "lfs.yaml"
    path.write_text(f"labeling_functions:\n  - !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ConfigError, match=r"not valid YAML or uses a tag that is not allowed"):
        load_labeling_functions(str(path))
    path.write_text("labeling_functions:\n  - name: x\n    type: regex\n    class: !!python/name:os.system\n"
                    "    pattern: a\n")
    with pytest.raises(ConfigError, match="tag that is not allowed"):
        load_rules(path)
    assert not marker.exists()
    with pytest.raises(FileNotFoundError, match="not found"):
        load_labeling_functions(str(tmp_path / "missing.yml"))


def test_field_must_be_a_column():
    lf = rules({"name": "kw", "type": "keyword", "class": "spam", "keywords": ["x"], "field": "body"})
    with pytest.raises(ValueError, match=r"'kw': field 'body' is not a column of the items; columns are: id, text"):
        apply_labeling_functions(lf, ITEMS, CLASSES, progress=False)


def test_demo_yaml_equals_demo_python_and_per_item():
    items = pd.read_csv(DEMO / "data.csv")
    classes = ["sports", "technology", "food", "weather"]
    yaml_lfs = load_labeling_functions(str(DEMO / "lfs.yaml"), classes=classes)
    py_lfs = load_labeling_functions(str(DEMO / "lfs.py"))
    assert [lf.name for lf in yaml_lfs] == [lf.name for lf in py_lfs]
    vectorized = apply_labeling_functions(yaml_lfs, items, classes, progress=False)
    assert (vectorized >= 0).any(axis=0).all()
    np.testing.assert_array_equal(vectorized, per_item(yaml_lfs, items, classes))
    np.testing.assert_array_equal(vectorized, apply_labeling_functions(py_lfs, items, classes, progress=False))


def test_vectorized_equals_per_item_on_wrench_youtube():
    from pipeline.data import load_items

    path = require_shared("wrench", "youtube")
    loaded = load_items(parse_config({"data": {"path": str(path), "format": "wrench"}}).data)
    items = loaded.frame
    lfs = load_labeling_functions(str(DEMO.parent.parent / "benchmarks" / "configs" / "wrench-youtube-lfs.yaml"),
                                  classes=loaded.classes)
    lfs += parse_rules({"labeling_functions": [  # whole words with non-ASCII data; case-sensitive regex
        {"name": "kw_ww", "type": "keyword", "class": "SPAM", "keywords": ["check", "views", "é"]},
        {"name": "re_cs", "type": "regex", "class": "SPAM", "pattern": r"\bChannel\w*", "case_sensitive": True}]})
    vectorized = apply_labeling_functions(lfs, items, loaded.classes, progress=False)
    np.testing.assert_array_equal(vectorized, per_item(lfs, items, loaded.classes))
    # the seven rules reproduce the dataset's own labeling functions (lf_0..lf_6) exactly
    np.testing.assert_array_equal(vectorized[:, :7], items[[f"lf_{j}" for j in range(7)]].to_numpy())


def test_progress_bar_over_the_lf_set(capsys):
    lfs = rules({"name": "kw", "type": "keyword", "class": "spam", "keywords": ["song"]})
    apply_labeling_functions(lfs, ITEMS, CLASSES, progress=True)
    assert "labeling functions" in capsys.readouterr().err


def test_label_stage_with_yaml_rules(demo_config, tmp_path):
    cfg = demo_config(label={"labeling_functions": [str(DEMO / "lfs.yaml")]})
    run_dir = run_pipeline(cfg, progress=False, until="label")
    votes = pd.read_parquet(run_dir / "votes.parquet")
    meta = yaml.safe_load((run_dir / "labelers.json").read_text())
    assert list(votes.columns)[:3] == ["id", "lf_sports_match_terms", "lf_sports_competition"]
    assert [m["rule"] for m in meta[:3]] == ["keyword", "regex", "regex"]
    assert not (run_dir / "aggregate.parquet").exists()


def test_bad_rule_file_stops_the_run_before_anything_is_written(demo_config, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("labeling_functions:\n  - {name: kw, type: keyword, class: cooking, keywords: [pan]}\n")
    cfg = demo_config(label={"labeling_functions": [str(bad)]})
    with pytest.raises(ConfigError, match=r"bad\.yaml: labeling function 'kw': class 'cooking'"):
        run_pipeline(cfg, progress=False)
    assert not cfg.run_dir.exists()
