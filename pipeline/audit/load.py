"""Read annotations for an audit: long (`item, annotator, label`) or wide (one column per annotator).

Also accepted: a JSONL/Parquet column holding a dict `{annotator: label}` per item (LLMBar-style
`judges`). Optional `gold` column (empty / `?` = unknown) and optional `text` column.
Everything becomes an `AuditData`: votes (N, M) int with -1 = abstain, gold (N,) int with -1 = unknown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import read_table
from ..errors import InputError

ABSTAIN = {"", "?", "-1", "abstain", "none", "nan", "null", "n/a"}
ID_COLUMNS = ("item", "id", "item_id", "uuid")
LABEL_COLUMNS = ("label", "verdict", "annotation")
GOLD_COLUMNS = ("gold", "gold_label", "true_label")


@dataclass
class AuditData:
    """Annotations ready for auditing. votes: (N, M) int, -1 = abstain; gold: (N,) int, -1 = unknown."""

    items: list[str]
    annotators: list[str]
    classes: list[str]
    votes: np.ndarray
    gold: np.ndarray
    text: list[str] | None
    source: str

    @property
    def has_gold(self) -> bool:
        return bool((self.gold >= 0).any())


def _norm(value) -> str | None:
    """A label value as a string, or None for abstain / missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool):
        value = int(value)
    text = str(value).strip()
    return None if text.lower() in ABSTAIN else text


def _pick(frame: pd.DataFrame, given: str | None, candidates: tuple[str, ...], path: Path, what: str) -> str | None:
    if given is not None:
        if given not in frame.columns:
            raise InputError(path, f"{what} column '{given}' not found; columns: {', '.join(map(str, frame.columns))}",
                             field=given)
        return given
    lower = {str(c).lower(): c for c in frame.columns}
    return next((lower[c] for c in candidates if c in lower), None)


def load_annotations(path: str | Path, *, item_col: str | None = None, annotator_col: str | None = None,
                     label_col: str | None = None, gold_col: str | None = None, text_col: str | None = None,
                     annotator_cols: list[str] | None = None, classes: list[str] | None = None,
                     layout: str = "auto") -> AuditData:
    """Load annotations from CSV / TSV / JSONL / Parquet.

    layout: "long" (one row per item x annotator: item, annotator, label columns), "wide" (one row per item,
    one column per annotator: `annotator_cols`, or every column ending in `_label`, or a column of dicts),
    or "auto" (long when the file has an `annotator` column).
    classes: the class list (order = class index); default: sorted labels seen (gold and votes).
    Raises InputError naming the file / row / field for missing columns, conflicting gold, no annotators.
    """
    path = Path(path)
    frame = read_table(path)
    if layout not in {"auto", "long", "wide"}:
        raise ValueError(f"layout must be auto, long or wide, got '{layout}'")
    ann_col = _pick(frame, annotator_col, ("annotator", "judge", "labeler", "rater"), path, "annotator")
    if layout == "auto":
        layout = "long" if ann_col is not None else "wide"
    gold_c = _pick(frame, gold_col, GOLD_COLUMNS if layout == "long" else GOLD_COLUMNS + ("label",), path, "gold")
    text_c = _pick(frame, text_col, ("text", "sentence", "input"), path, "text")
    id_c = _pick(frame, item_col, ID_COLUMNS, path, "item")

    if layout == "long":
        if ann_col is None:
            raise InputError(path, "long layout needs an 'annotator' column (or --annotator-col)", field="annotator")
        lab_c = _pick(frame, label_col, LABEL_COLUMNS, path, "label")
        if lab_c is None:
            raise InputError(path, "long layout needs a 'label' column (or --label-col)", field="label")
        if id_c is None:
            raise InputError(path, "long layout needs an 'item' column (or --item-col)", field="item")
        items = list(dict.fromkeys(str(v) for v in frame[id_c]))
        annotators = list(dict.fromkeys(str(v) for v in frame[ann_col] if _norm(v) is not None))
        labels = {}
        for rowno, (it, an, lab) in enumerate(zip(frame[id_c], frame[ann_col], frame[lab_c]), start=1):
            if _norm(an) is None:
                raise InputError(path, "missing annotator name", row=rowno, field=str(ann_col))
            key = (str(it), str(an))
            value = _norm(lab)
            if key in labels and labels[key] != value:
                raise InputError(path, f"annotator '{an}' gives item '{it}' two labels ({labels[key]}, {value})",
                                 row=rowno, field=str(lab_c))
            labels[key] = value
        raw_votes = [[labels.get((it, an)) for an in annotators] for it in items]
        gold_raw: dict[str, str | None] = {str(it): None for it in items}
        if gold_c is not None:
            for rowno, (it, g) in enumerate(zip(frame[id_c], frame[gold_c]), start=1):
                g = _norm(g)
                if g is None:
                    continue
                if gold_raw[str(it)] not in (None, g):
                    raise InputError(path, f"item '{it}' has two gold labels ({gold_raw[str(it)]}, {g})",
                                     row=rowno, field=str(gold_c))
                gold_raw[str(it)] = g
        gold_list = [gold_raw[it] for it in items]
        text = None
        if text_c is not None:
            first = frame.drop_duplicates(subset=[id_c]).set_index(frame.drop_duplicates(subset=[id_c])[id_c].astype(str))
            text = [str(first.loc[it, text_c]) for it in items]
    else:
        items = [str(v) for v in frame[id_c]] if id_c is not None else [str(i) for i in range(len(frame))]
        if len(set(items)) != len(items):
            dup = pd.Series(items)[pd.Series(items).duplicated()].iloc[0]
            raise InputError(path, f"item id '{dup}' appears twice (wide layout has one row per item)",
                             field=str(id_c))
        if annotator_cols:
            missing = [c for c in annotator_cols if c not in frame.columns]
            if missing:
                raise InputError(path, f"annotator column(s) not found: {', '.join(missing)}", field=missing[0])
            columns = {c: list(frame[c]) for c in annotator_cols}
        else:
            dict_cols = [c for c in frame.columns if frame[c].map(lambda v: isinstance(v, dict)).any()]
            if dict_cols:
                col = dict_cols[0]
                names = list(dict.fromkeys(k for d in frame[col] if isinstance(d, dict) for k in d))
                columns = {n: [d.get(n) if isinstance(d, dict) else None for d in frame[col]] for n in names}
            else:
                cols = [c for c in frame.columns if str(c).endswith("_label") and c != gold_c]
                columns = {c: list(frame[c]) for c in cols}
        if not columns:
            raise InputError(path, "no annotator columns found: name them with --annotators, end their names "
                             "in '_label', or use the long layout (item, annotator, label)")
        annotators = [str(c) for c in columns]
        raw_votes = [[_norm(columns[c][i]) for c in columns] for i in range(len(frame))]
        gold_list = [_norm(v) for v in frame[gold_c]] if gold_c is not None else [None] * len(frame)
        text = [str(v) for v in frame[text_c]] if text_c is not None else None

    if len(annotators) < 2:
        raise InputError(path, f"an audit needs at least 2 annotators, found {len(annotators)} "
                         f"({', '.join(annotators) or 'none'})")
    seen = sorted({v for row in raw_votes for v in row if v is not None} | {g for g in gold_list if g is not None})
    if classes is None:
        classes = seen
    else:
        classes = [str(c) for c in classes]
        unknown = [v for v in seen if v not in classes]
        if unknown:
            where = next(((i, j) for i, row in enumerate(raw_votes) for j, v in enumerate(row) if v == unknown[0]), None)
            field = annotators[where[1]] if where else "gold"
            row = where[0] + 1 if where else gold_list.index(unknown[0]) + 1
            raise InputError(path, f"label '{unknown[0]}' is not one of the classes {classes}", row=row, field=field)
    if len(classes) < 2:
        raise InputError(path, f"need at least 2 classes among the labels, found {classes}")
    index = {c: k for k, c in enumerate(classes)}
    votes = np.array([[index[v] if v is not None else -1 for v in row] for row in raw_votes], dtype=np.int64)
    gold = np.array([index[g] if g is not None else -1 for g in gold_list], dtype=np.int64)
    if (votes < 0).all():
        raise InputError(path, "every annotation is an abstain: nothing to audit")
    return AuditData(items, annotators, classes, votes, gold, text, str(path))


def attach_gold(data: AuditData, path: str | Path, item_col: str | None = None,
                gold_col: str | None = None) -> AuditData:
    """Add gold labels from a separate file (`item, gold`). Unknown items or classes raise InputError."""
    path = Path(path)
    frame = read_table(path)
    id_c = _pick(frame, item_col, ID_COLUMNS, path, "item")
    g_c = _pick(frame, gold_col, GOLD_COLUMNS + LABEL_COLUMNS, path, "gold")
    if id_c is None or g_c is None:
        raise InputError(path, "gold file needs an item column and a gold column")
    pos = {it: i for i, it in enumerate(data.items)}
    index = {c: k for k, c in enumerate(data.classes)}
    gold = data.gold.copy()
    for rowno, (it, g) in enumerate(zip(frame[id_c], frame[g_c]), start=1):
        g = _norm(g)
        if g is None:
            continue
        if str(it) not in pos:
            raise InputError(path, f"gold for unknown item '{it}' (not in {data.source})", row=rowno, field=str(id_c))
        if g not in index:
            raise InputError(path, f"gold label '{g}' is not one of the classes {data.classes}", row=rowno,
                             field=str(g_c))
        gold[pos[str(it)]] = index[g]
    return AuditData(data.items, data.annotators, data.classes, data.votes, gold, data.text, data.source)
