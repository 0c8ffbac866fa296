"""Labeling functions: small Python functions that return a class name or abstain (None).

    @labeling_function()
    def lf_refund(x):
        return "complaint" if "refund" in x.text.lower() else None

`x` is the item: `x.text`, `x.id` and every other column of the items table as attributes.
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

    Raises ValueError naming the function and item when one returns a class not in `classes`.
    """
    index = {c: i for i, c in enumerate(classes)}
    votes = np.full((len(items), len(lfs)), -1, dtype=np.int64)
    rows = list(items.itertuples(index=False))
    for j, lf in enumerate(lfs):
        vectorized = getattr(lf, "apply", None)
        if vectorized is not None:  # declarative LFs label a whole table at once
            votes[:, j] = vectorized(items, classes)
            continue
        for i, x in enumerate(tqdm(rows, desc=f"lf {lf.name}", disable=not progress, leave=False)):
            out = lf(x)
            if out is None:
                continue
            if out not in index:
                raise ValueError(f"labeling function '{lf.name}' returned '{out}' for item '{x.id}', "
                                 f"which is not in the class list {classes}")
            votes[i, j] = index[out]
    return votes


def load_labeling_functions(source: str) -> list[LabelingFunction]:
    """All `LabelingFunction`s defined in a Python file path or an importable module name."""
    path = Path(source)
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
