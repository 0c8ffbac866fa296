"""Config validation: unknown keys list the allowed keys; wrong values name their location."""

import pytest

from pipeline.config import load_config, parse_config
from pipeline.errors import ConfigError


def test_minimal_config_gets_defaults():
    cfg = parse_config({"data": {"path": "x.csv"}})
    assert cfg.aggregate.method == "auto" and cfg.denoise.method == "knn" and cfg.train.epochs == 3


def test_unknown_top_level_key_lists_allowed_keys():
    with pytest.raises(ConfigError) as info:
        parse_config({"data": {"path": "x.csv"}, "trian": {}})
    msg = str(info.value)
    assert "trian: unknown key" in msg
    assert "allowed keys: aggregate, data, denoise, label, name, neighbors, output_dir, seed, train" in msg


def test_unknown_nested_key_lists_that_sections_keys():
    with pytest.raises(ConfigError) as info:
        parse_config({"data": {"path": "x.csv"}, "train": {"epoch": 3}})
    msg = str(info.value)
    assert "train.epoch: unknown key" in msg and "epochs" in msg and "batch_size" in msg


def test_bad_value_and_missing_required():
    with pytest.raises(ConfigError, match=r"train.epochs: Input should be greater than or equal to 1"):
        parse_config({"data": {"path": "x.csv"}, "train": {"epochs": 0}})
    with pytest.raises(ConfigError, match=r"data: Field required"):
        parse_config({})
    with pytest.raises(ConfigError, match="duplicate class names"):
        parse_config({"data": {"path": "x.csv", "classes": ["a", "a"]}})


def test_yaml_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_relative_paths_resolve_against_the_config_file(tmp_path):
    (tmp_path / "items.csv").write_text("text\nhello\n")
    (tmp_path / "c.yaml").write_text("data: {path: items.csv}\n")
    assert load_config(tmp_path / "c.yaml").data.path == str(tmp_path / "items.csv")
