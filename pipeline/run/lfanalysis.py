"""`labelpipe lf-analysis`: read a run folder's votes and items, analyse the labelers, render a table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from rich import box
from rich.table import Table

from ..errors import LabelpipeError

SPLITS = ("all", "train", "valid", "test")


def analyze_run_folder(folder: str | Path, split: str = "all") -> dict:
    """`labelers.analysis.lf_report` for the votes of a run folder (votes.parquet, items.parquet,
    classes.json; labelers.json for the kinds), on one split or all items. Adds `run` and `split`."""
    from labelers.analysis import lf_report

    folder = Path(folder)
    if split not in SPLITS:
        raise LabelpipeError(f"--split must be one of {', '.join(SPLITS)}, got '{split}'")
    missing = [f for f in ("votes.parquet", "items.parquet", "classes.json") if not (folder / f).exists()]
    if missing:
        raise LabelpipeError(f"{folder} is not a labelled run folder ({', '.join(missing)} missing); give a run "
                             "config, or run `labelpipe run CONFIG --until label` first")
    items = pd.read_parquet(folder / "items.parquet")
    votes = pd.read_parquet(folder / "votes.parquet")
    classes = json.loads((folder / "classes.json").read_text())["classes"]
    if len(votes) != len(items) or not (votes["id"].astype(str).to_numpy() == items["id"].astype(str).to_numpy()).all():
        raise LabelpipeError(f"{folder}: votes.parquet and items.parquet hold different items; re-run the label stage")
    names = [c for c in votes.columns if c != "id"]
    kinds = None
    if (folder / "labelers.json").exists():
        meta = {e["name"]: e for e in json.loads((folder / "labelers.json").read_text())}
        kinds = [_kind(meta.get(n, {})) for n in names]
    rows = np.ones(len(items), dtype=bool) if split == "all" else (items["split"] == split).to_numpy()
    if not rows.any():
        raise LabelpipeError(f"{folder}: no items in split '{split}'")
    matrix = votes[names].to_numpy(dtype=np.int64)[rows]
    gold = items["gold"].to_numpy(dtype=np.int64)[rows] if "gold" in items else None
    try:
        report = lf_report(matrix, names, classes, gold=gold, kinds=kinds)
    except ValueError as err:
        raise LabelpipeError(f"{folder / 'votes.parquet'}: {err}") from None
    if gold is not None:
        known = items["gold"].to_numpy(dtype=np.int64) >= 0
        report["summary"]["gold_items_by_split"] = {
            name: int((known & rows & (items["split"] == name).to_numpy()).sum()) for name in SPLITS[1:]}
    return {"run": str(folder), "split": split, **report}


def _kind(entry: dict) -> str:
    kind = entry.get("kind", "?")
    if kind == "labeling_function":
        return entry.get("rule", "python")
    return kind


def _fraction(x) -> str:
    return "–" if x is None else f"{x:.3f}"


def render_table(report: dict) -> Table:
    """A rich table: one row per labeler; the accuracy column (with the number of gold items it is
    measured on) only when some item has gold. Correct / incorrect counts are in the JSON."""
    s = report["summary"]
    has_gold = s["gold_items"] > 0
    gold = f", {s['gold_items']} with gold" if has_gold else ""
    title = (f"{s['labelers']} labelers on {s['items']} items ({report['split']}{gold}): coverage "
             f"{s['label_coverage']:.3f}, overlap {s['label_overlap']:.3f}, conflict {s['label_conflict']:.3f}")
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("labeler", no_wrap=True, overflow="ellipsis", min_width=12)
    table.add_column("kind", no_wrap=True)
    table.add_column("polarity", no_wrap=True, overflow="ellipsis", min_width=8)
    for name in ("coverage", "overlap", "conflict"):
        table.add_column(name, justify="right", no_wrap=True, min_width=len(name))
    if has_gold:
        table.add_column("emp. acc. (n)", justify="right", no_wrap=True, min_width=13)
    for row in report["labelers"]:
        cells = [row["labeler"], row.get("kind", ""), ", ".join(map(str, row["polarity"])) or "–",
                 _fraction(row["coverage"]), _fraction(row["overlap"]), _fraction(row["conflict"])]
        if has_gold:
            acc = row["accuracy"]
            cells.append("–" if acc is None else f"{acc:.3f} ({row['gold_n']})")
        table.add_row(*cells)
    return table
