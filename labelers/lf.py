"""Labeling functions: small Python functions that return a class name or abstain (None).

    @labeling_function()
    def lf_refund(x):
        return "complaint" if "refund" in x.text.lower() else None

`x` is the item: `x.text`, `x.id` and every other column of the items table as attributes.
Keyword and regex rules can also be declared in YAML (no code): see `labelers.rules`.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .rules import RULE_SUFFIXES, load_rules

ABSTAIN = None


@dataclass(frozen=True)
class LabelingFunction:
    """A named function item -> class name (str) or None (abstain)."""

    name: str
    func: Callable

    def __call__(self, x):
        return self.func(x)


def labeling_function(name: str | None = None) -> Callable[[Callable], LabelingFunction]:
    """Decorator that turns `f(x) -> class name | None` into a `LabelingFunction`."""

    def wrap(func: Callable) -> LabelingFunction:
        return LabelingFunction(name or func.__name__, func)

    return wrap


def apply_labeling_functions(lfs: Sequence, items: pd.DataFrame, classes: list[str],
                             progress: bool = True) -> np.ndarray:
    """Apply labeling functions to every item. Returns votes (N, M) int, -1 = abstain.

    A function with an `apply(items, classes) -> (N,) int` method (the YAML keyword/regex rules) labels
    the whole table at once; a plain Python function is called once per item. One progress bar counts
    the functions; a Python function also shows a bar over the items.

    Raises ValueError naming the function and item when one returns a class not in `classes`.
    """
    index = {c: i for i, c in enumerate(classes)}
    votes = np.full((len(items), len(lfs)), -1, dtype=np.int64)
    rows = None
    bar = tqdm(lfs, desc="labeling functions", unit="lf", disable=not progress)
    for j, lf in enumerate(bar):
        bar.set_postfix_str(lf.name, refresh=False)
        vectorized = getattr(lf, "apply", None)
        if vectorized is not None:  # declarative LFs label a whole table at once
            column = np.asarray(vectorized(items, classes))
            if column.shape != (len(items),) or ((column < -1) | (column >= len(classes))).any():
                raise ValueError(f"labeling function '{lf.name}': apply() must return {len(items)} class "
                                 f"indices in [-1, {len(classes) - 1}]")
            votes[:, j] = column
            continue
        if rows is None:
            rows = list(items.itertuples(index=False))
        for i, x in enumerate(tqdm(rows, desc=f"lf {lf.name}", disable=not progress, leave=False)):
            out = lf(x)
            if out is None:
                continue
            if out not in index:
                raise ValueError(f"labeling function '{lf.name}' returned '{out}' for item '{x.id}', "
                                 f"which is not in the class list {classes}")
            votes[i, j] = index[out]
    return votes


def load_labeling_functions(source: str, classes: list[str] | None = None) -> list:
    """The labeling functions of a source: a YAML rule file (.yaml/.yml: keyword and regex rules, see
    `labelers.rules`), a Python file, or an importable module name (every `LabelingFunction` in it).

    With `classes`, a YAML rule whose class is not in the list is an error at load time.
    """
    path = Path(source)
    if path.suffix.lower() in RULE_SUFFIXES:
        return load_rules(path, classes=classes)
    if path.suffix == ".py":
        if not path.is_file():
            raise FileNotFoundError(f"labeling-function file not found: {source}")
        module_name = f"labelpipe_lfs_{abs(hash(str(path.resolve())))}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(source)
    lfs = [v for v in vars(module).values() if isinstance(v, LabelingFunction)]
    if not lfs:
        raise ValueError(f"no labeling functions (decorated with @labeling_function()) found in {source}")
    return lfs
