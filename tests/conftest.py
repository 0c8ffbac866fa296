import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
DEMO = ROOT / "examples" / "demo"


def load_benchmark(name: str):
    """The module benchmarks/<name>.py, imported by path (benchmarks/ is not a package) and registered in
    sys.modules under `name` (dataclasses look their module up there)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def require_shared(*parts: str) -> Path:
    """Path under ../shared/datasets, or skip the test when the shared datasets are absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared dataset not available: {path}")
    return path


@pytest.fixture
def write_csv(tmp_path):
    """Write rows (list of lists, first row the header) to a CSV file and return its path."""
    import csv

    def _write(rows, name="items.csv"):
        path = tmp_path / name
        with path.open("w", newline="") as fh:
            csv.writer(fh).writerows(rows)
        return path

    return _write


@pytest.fixture
def demo_config(tmp_path):
    """A small run config over a slice of the demo data (per class: 12 train, 3 valid, 4 test)."""
    import pandas as pd

    from pipeline.config import parse_config

    data = pd.read_csv(DEMO / "data.csv")
    quota = {"train": 12, "valid": 3, "test": 4}
    parts = [g.head(quota[split]) for (split, _), g in data.groupby(["split", "label"])]
    pd.concat(parts).sample(frac=1, random_state=0).to_csv(tmp_path / "items.csv", index=False)

    def make(**overrides):
        raw = {"name": "t", "output_dir": str(tmp_path / "runs"), "seed": 0,
               "data": {"path": str(tmp_path / "items.csv"), "classes": ["sports", "technology", "food", "weather"]},
               "label": {"labeling_functions": [str(DEMO / "lfs.py")]},
               "train": {"epochs": 1, "batch_size": 16, "max_length": 32}}
        for section, values in overrides.items():
            if isinstance(values, dict):
                raw.setdefault(section, {}).update(values)
            else:
                raw[section] = values
        return parse_config(raw)

    return make
