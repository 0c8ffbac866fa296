"""Speed of labeling-function application: YAML rules a column at a time vs one item at a time.

    python benchmarks/lf_apply.py --json OUT [--tile 1,50] [--repeats 3]

On WRENCH youtube (2056 comments; tiled to N x 2056 rows for a larger table), the seven rules of
benchmarks/configs/wrench-youtube-lfs.yaml are applied
- `vectorized`: `apply_labeling_functions` with the rules as loaded (one `str.contains` per rule);
- `per_item`: the same compiled regexes called once per item (the Python-function path);
- `python`: the same rules hand-written as Python functions (substring tests, `len(split())`), the way
  the Snorkel tutorial writes them, per item;
- `snorkel`: those Python functions through Snorkel's `PandasLFApplier` (tile 1 only; when installed).
All four must give the same votes (checked). Figures: min wall seconds over the repeats.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from labelers import LabelingFunction, apply_labeling_functions, labeling_function, load_labeling_functions  # noqa: E402
from pipeline.config import parse_config  # noqa: E402
from pipeline.data import load_items  # noqa: E402

DATA = ROOT.parent / "shared" / "datasets" / "wrench" / "youtube"
RULES = ROOT / "benchmarks" / "configs" / "wrench-youtube-lfs.yaml"


def _kw(name, words, label):
    @labeling_function(name=name)
    def lf(x):
        text = x.text.lower()
        return label if any(w in text for w in words) else None
    return lf


CHECK_OUT = re.compile(r"check.*out", re.I)
PYTHON_LFS = [
    _kw("keyword_my", ["my"], "SPAM"), _kw("keyword_subscribe", ["subscribe"], "SPAM"),
    _kw("keyword_link", ["http"], "SPAM"), _kw("keyword_please", ["please", "plz"], "SPAM"),
    _kw("keyword_song", ["song"], "HAM"),
    labeling_function(name="regex_check_out")(lambda x: "SPAM" if CHECK_OUT.search(x.text) else None),
    labeling_function(name="short_comment")(lambda x: "HAM" if len(x.text.split()) < 5 else None),
]


def timed(fn, repeats: int) -> tuple[float, np.ndarray]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def snorkel_votes(items: pd.DataFrame, classes: list[str]) -> np.ndarray:
    from snorkel.labeling import LabelingFunction as SnorkelLF
    from snorkel.labeling import PandasLFApplier

    index = {c: i for i, c in enumerate(classes)}
    lfs = [SnorkelLF(lf.name, f=lambda x, lf=lf: index.get(lf(x), -1)) for lf in PYTHON_LFS]
    return PandasLFApplier(lfs).apply(items, progress_bar=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--tile", default="1,50", help="comma-separated copies of the dataset")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    loaded = load_items(parse_config({"data": {"path": str(DATA), "format": "wrench"}}).data)
    classes = loaded.classes
    rules = load_labeling_functions(str(RULES), classes=classes)
    per_item = [LabelingFunction(lf.name, lf.__call__) for lf in rules]
    results = []
    for tile in (int(t) for t in args.tile.split(",")):
        items = pd.concat([loaded.frame] * tile, ignore_index=True)
        modes = {name: (lambda lfs, rows: apply_labeling_functions(lfs, rows, classes, progress=False), lfs)
                 for name, lfs in (("vectorized", rules), ("per_item", per_item), ("python", PYTHON_LFS))}
        if tile == 1:
            try:
                import snorkel  # noqa: F401
                modes["snorkel"] = (lambda _, rows: snorkel_votes(rows, classes), None)
            except ImportError:
                pass
        reference = None
        for mode, (fn, lfs) in modes.items():
            seconds, votes = timed(lambda fn=fn, lfs=lfs, rows=items: fn(lfs, rows), args.repeats)
            reference = votes if reference is None else reference
            same = bool(np.array_equal(votes, reference))
            if not same:
                raise SystemExit(f"{mode} votes differ from the vectorized ones at tile {tile}")
            results.append({"dataset": "wrench/youtube", "rows": len(items), "lfs": len(rules), "mode": mode,
                            "seconds": seconds, "items_per_second": len(items) / seconds, "same_votes": same})
            print(f"{len(items):>7} rows  {mode:<10} {seconds:8.4f} s  {len(items) / seconds:>12,.0f} items/s",
                  flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
