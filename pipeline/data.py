"""Load items from CSV, JSONL, Parquet, a saved Hugging Face dataset, or WRENCH JSON.

The result is one table with columns `id, text, split, gold` (gold = class index, -1 when unknown),
one int column per annotation source (class index, -1 = abstain), and any other columns as they came.
Bad rows raise an `InputError` naming file, row and field (`on_error="stop"`) or are skipped and
counted (`on_error="skip"`).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .config import DataConfig
from .errors import InputError

SPLITS = ("train", "valid", "test")
SPLIT_ALIASES = {"train": "train", "training": "train", "valid": "valid", "validation": "valid",
                 "val": "valid", "dev": "valid", "test": "test", "testing": "test"}
ABSTAIN_VALUES = {"", "?", "-1", "abstain", "none", "nan", "null"}


@dataclass
class LoadedItems:
    """Items ready for the pipeline."""

    frame: pd.DataFrame
    classes: list[str]
    annotation_columns: list[str]
    source: str
    skipped: list[InputError] = field(default_factory=list)


@dataclass
class _Raw:
    records: list[dict]
    row_errors: list[InputError]
    classes: list[str] | None = None
    annotation_columns: list[str] | None = None


def detect_format(path: Path) -> str:
    if path.is_dir():
        if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists() or (
            path / "state.json"
        ).exists():
            return "hf"
        if (path / "label.json").exists() or (path / "train.json").exists():
            return "wrench"
        raise InputError(path, "folder is neither a saved Hugging Face dataset nor a WRENCH folder")
    suffix = path.suffix.lower()
    formats = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet",
               ".json": "wrench"}
    if suffix not in formats:
        raise InputError(path, f"unknown file type '{suffix}'; use csv, jsonl, parquet, a HF dataset folder or WRENCH json")
    return formats[suffix]


def _read_csv(path: Path) -> _Raw:
    records, errors = [], []
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            raise InputError(path, "file is empty (no header row)") from None
        for rowno, values in enumerate(reader, start=1):
            if not values:
                continue
            if len(values) != len(header):
                errors.append(InputError(path, f"malformed row: {len(values)} fields, header has {len(header)} "
                                         f"(line {reader.line_num})", row=rowno))
                records.append(None)
                continue
            records.append(dict(zip(header, values, strict=True)))
    return _Raw(records, errors)


def _read_jsonl(path: Path) -> _Raw:
    records, errors = [], []
    with path.open(encoding="utf-8") as fh:
        for rowno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                errors.append(InputError(path, f"malformed JSON: {err.msg}", row=rowno))
                records.append(None)
                continue
            if not isinstance(obj, dict):
                errors.append(InputError(path, "malformed row: expected a JSON object", row=rowno))
                records.append(None)
                continue
            records.append(obj)
    return _Raw(records, errors)


def _read_parquet(path: Path) -> _Raw:
    return _Raw(pd.read_parquet(path).to_dict("records"), [])


def _read_hf(path: Path) -> _Raw:
    import datasets

    ds = datasets.load_from_disk(str(path))
    records: list[dict] = []
    if isinstance(ds, datasets.DatasetDict):
        for split_name, part in ds.items():
            for rec in part:
                rec.setdefault("split", split_name)
                records.append(rec)
    else:
        records = list(ds)
    classes = None
    feats = ds[next(iter(ds))].features if isinstance(ds, datasets.DatasetDict) else ds.features
    for feat in feats.values():
        if isinstance(feat, datasets.ClassLabel):
            classes = list(feat.names)
    return _Raw(records, [], classes=classes)


ENTITY_MARKERS = ("<e1>", "</e1>", "<e2>", "</e2>")


def is_entity_marked(text: str) -> bool:
    """Whether `text` carries both opening entity markers (<e1> and <e2>)."""
    return ENTITY_MARKERS[0] in text and ENTITY_MARKERS[2] in text


def has_entity_markers(texts: list[str], share: float = 0.5) -> bool:
    """Whether at least `share` of the texts are entity-marked (`is_entity_marked`)."""
    texts = list(texts)
    return bool(texts) and sum(map(is_entity_marked, texts)) >= share * len(texts)


def mark_entities(text: str, span1, span2) -> str:
    """`text` with <e1>..</e1> and <e2>..</e2> around two [start, end) character spans (the entity pair of a
    WRENCH relation example, as WRENCH's relation models mark it). ValueError for a span out of the text or
    overlapping spans."""
    (a1, b1), (a2, b2) = (tuple(int(v) for v in span1), tuple(int(v) for v in span2))
    for start, end in ((a1, b1), (a2, b2)):
        if not 0 <= start < end <= len(text):
            raise ValueError(f"entity span [{start}, {end}) is outside the text (length {len(text)})")
    if a1 < b2 and a2 < b1:
        raise ValueError(f"entity spans [{a1}, {b1}) and [{a2}, {b2}) overlap")
    e1, e1_end, e2, e2_end = ENTITY_MARKERS
    for pos, tag in sorted([(a1, e1), (b1, e1_end), (a2, e2), (b2, e2_end)], reverse=True):
        text = text[:pos] + tag + text[pos:]
    return text


def _read_wrench(path: Path, entity_markers: bool = True) -> _Raw:
    folder = path if path.is_dir() else path.parent
    files = [folder / f"{s}.json" for s in SPLITS] if path.is_dir() else [path]
    files = [f for f in files if f.exists()]
    if not files:
        raise InputError(path, "no train.json / valid.json / test.json found")
    classes = None
    if (folder / "label.json").exists():
        mapping = json.loads((folder / "label.json").read_text())
        classes = [mapping[str(i)] for i in range(len(mapping))]
    records, errors, n_lf = [], [], None
    for f in files:
        try:
            content = json.loads(f.read_text())
        except json.JSONDecodeError as err:
            raise InputError(f, f"malformed JSON: {err.msg} (line {err.lineno})") from None
        split = SPLIT_ALIASES.get(f.stem, f.stem)
        for rowno, (key, ex) in enumerate(content.items(), start=1):
            if not isinstance(ex, dict) or not isinstance(ex.get("data"), dict) or "weak_labels" not in ex:
                errors.append(InputError(f, "malformed WRENCH example (needs data, weak_labels)", row=rowno))
                records.append(None)
                continue
            weak = ex["weak_labels"]
            n_lf = len(weak) if n_lf is None else n_lf
            if len(weak) != n_lf:
                errors.append(InputError(f, f"{len(weak)} weak labels, expected {n_lf}", row=rowno,
                                         field="weak_labels"))
                records.append(None)
                continue
            rec = {k: v for k, v in ex["data"].items() if isinstance(v, (str, int, float))}
            if entity_markers and "span1" in ex["data"] and "span2" in ex["data"]:
                try:
                    rec["text"] = mark_entities(str(rec.get("text", "")), ex["data"]["span1"], ex["data"]["span2"])
                except (ValueError, TypeError) as err:
                    errors.append(InputError(f, f"bad entity spans: {err}", row=rowno, field="data.span1/span2"))
                    records.append(None)
                    continue
            rec.update({"id": f"{split}-{key}", "label": ex.get("label"), "split": split})
            rec.update({f"lf_{j}": v for j, v in enumerate(weak)})
            records.append(rec)
    return _Raw(records, errors, classes=classes, annotation_columns=[f"lf_{j}" for j in range(n_lf or 0)])


READERS = {"csv": _read_csv, "jsonl": _read_jsonl, "parquet": _read_parquet, "hf": _read_hf,
           "wrench": _read_wrench}


TABLE_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}


def read_table(path: str | Path) -> pd.DataFrame:
    """Rows of a CSV / TSV / JSONL / Parquet file (CSV and TSV cells as strings); InputError naming the file
    (and row) for an unknown type, a missing, empty or malformed file, or one without rows."""
    path = Path(path)
    fmt = TABLE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(path, f"unknown file type '{path.suffix}'; use .csv, .tsv, .jsonl or .parquet")
    if not path.is_file():
        raise InputError(path, "file not found")
    if path.stat().st_size == 0:
        raise InputError(path, "file is empty")
    try:
        if fmt in ("csv", "tsv"):
            frame = pd.read_csv(path, sep="\t" if fmt == "tsv" else ",", dtype=str, keep_default_na=False)
        elif fmt == "jsonl":
            rows = []
            with path.open(encoding="utf-8") as fh:
                for rowno, line in enumerate(fh, start=1):
                    if line.strip():
                        try:
                            obj = json.loads(line)
                        except json.JSONDecodeError as err:
                            raise InputError(path, f"malformed JSON: {err.msg}", row=rowno) from None
                        if not isinstance(obj, dict):
                            raise InputError(path, "expected a JSON object", row=rowno)
                        rows.append(obj)
            frame = pd.DataFrame(rows)
        else:
            frame = pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise InputError(path, "file is empty") from None
    if frame.empty:
        raise InputError(path, "file has no rows")
    return frame


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def to_class_index(value, classes: list[str]) -> int | None:
    """Map a label value (class name or class index) to its index; -1 for abstain; None when unknown."""
    if _is_missing(value):
        return -1
    text = str(value).strip()
    if text in classes:
        return classes.index(text)
    if text.lower() in ABSTAIN_VALUES:
        return -1
    try:
        number = float(text)
    except ValueError:
        return None
    if number.is_integer() and 0 <= number < len(classes):
        return int(number)
    return None


def _infer_classes(records: list[dict], column: str | None) -> list[str] | None:
    if column is None:
        return None
    values = {str(r[column]).strip() for r in records if r and not _is_missing(r.get(column))}
    values -= ABSTAIN_VALUES
    return sorted(values) if values else None


def load_items(cfg: DataConfig, seed: int = 0) -> LoadedItems:
    """Load and validate the items described by `cfg`."""
    path = Path(cfg.path)
    if not path.exists():
        raise InputError(path, "file not found")
    fmt = detect_format(path) if cfg.format == "auto" else cfg.format
    raw = _read_wrench(path, cfg.entity_markers) if fmt == "wrench" else READERS[fmt](path)
    records = raw.records
    if not any(r is not None for r in records):
        raise InputError(path, "the dataset is empty (no rows)")

    label_col = cfg.label_column if fmt != "wrench" else "label"
    columns = set().union(*(r.keys() for r in records if r))
    if cfg.text_column not in columns:
        raise InputError(path, f"text column not found; columns are: {', '.join(sorted(columns))}",
                         field=cfg.text_column)
    has_label = label_col is not None and label_col in columns
    annotation_columns = raw.annotation_columns if fmt == "wrench" else list(cfg.annotation_columns)
    for col in annotation_columns:
        if col not in columns:
            raise InputError(path, f"annotation column not found; columns are: {', '.join(sorted(columns))}",
                             field=col)

    classes = cfg.classes or raw.classes or _infer_classes(records, label_col if has_label else None)
    if not classes:
        raise InputError(path, "no class list: give data.classes in the config")
    if len(classes) < 2:
        raise InputError(path, f"need at least 2 classes, got {classes}")

    id_col = cfg.id_column if fmt != "wrench" else "id"
    split_col = cfg.split_column if fmt != "wrench" else "split"
    has_split = split_col is not None and split_col in columns
    errors = list(raw.row_errors)
    rows, seen = [], {}
    for rowno, rec in enumerate(records, start=1):
        if rec is None:
            continue
        row_error = _validate_record(rec, rowno, path, cfg, classes, label_col if has_label else None,
                                     annotation_columns, id_col, split_col if has_split else None, seen)
        if row_error is not None:
            errors.append(row_error)
            continue
        rows.append(_build_row(rec, rowno, cfg, classes, label_col if has_label else None,
                                   annotation_columns, id_col, split_col if has_split else None))
        seen[rows[-1]["id"]] = rowno

    errors.sort(key=lambda e: e.row or 0)
    if errors and cfg.on_error == "stop":
        first = errors[0]
        more = f" ({len(errors) - 1} more bad rows; set data.on_error: skip to skip them)" if len(errors) > 1 else \
            " (set data.on_error: skip to skip bad rows)"
        raise InputError(first.file, str(first).split(": ", 1)[1] + more, row=first.row, field=first.field)
    if not rows:
        raise InputError(path, f"the dataset is empty: all {len(errors)} rows are bad")

    frame = pd.DataFrame(rows)
    if not has_split:
        frame["split"] = _random_splits(len(frame), cfg.split_fractions or (0.6, 0.2, 0.2), seed)
    ordered = ["id", "text", "split", "gold", *annotation_columns]
    frame = frame[ordered + [c for c in frame.columns if c not in ordered]]
    return LoadedItems(frame, list(classes), annotation_columns, str(path), skipped=errors)


def _validate_record(rec, rowno, path, cfg, classes, label_col, annotation_columns, id_col, split_col, seen):
    text = rec.get(cfg.text_column)
    if _is_missing(text) or not str(text).strip():
        return InputError(path, "empty text", row=rowno, field=cfg.text_column)
    if label_col is not None and to_class_index(rec.get(label_col), classes) is None:
        return InputError(path, f"label '{rec.get(label_col)}' is not in the class list {classes}", row=rowno,
                          field=label_col)
    for col in annotation_columns:
        if to_class_index(rec.get(col), classes) is None:
            return InputError(path, f"label '{rec.get(col)}' is not in the class list {classes}", row=rowno,
                              field=col)
    if split_col is not None and str(rec.get(split_col, "")).strip().lower() not in SPLIT_ALIASES:
        return InputError(path, f"unknown split '{rec.get(split_col)}'; use train, valid or test", row=rowno,
                          field=split_col)
    if id_col is not None and id_col in rec:
        if _is_missing(rec[id_col]) or not str(rec[id_col]).strip():
            return InputError(path, "empty id", row=rowno, field=id_col)
        if str(rec[id_col]) in seen:
            return InputError(path, f"duplicate id '{rec[id_col]}' (first seen in row {seen[str(rec[id_col])]})",
                              row=rowno, field=id_col)
    return None


def _build_row(rec, rowno, cfg, classes, label_col, annotation_columns, id_col, split_col) -> dict:
    row = {k: v for k, v in rec.items() if k not in {cfg.text_column, label_col, split_col, id_col,
                                                      *annotation_columns}}
    row["id"] = str(rec[id_col]) if id_col is not None and id_col in rec else str(rowno)
    row["text"] = str(rec[cfg.text_column])
    row["gold"] = to_class_index(rec.get(label_col), classes) if label_col is not None else -1
    row["split"] = SPLIT_ALIASES[str(rec[split_col]).strip().lower()] if split_col is not None else None
    for col in annotation_columns:
        row[col] = to_class_index(rec.get(col), classes)
    return row


def _random_splits(n: int, fractions: tuple[float, float, float], seed: int) -> np.ndarray:
    fr = np.asarray(fractions, dtype=float)
    fr = fr / fr.sum()
    order = np.random.default_rng(seed).permutation(n)
    bounds = np.round(np.cumsum(fr) * n).astype(int)
    split = np.empty(n, dtype=object)
    split[order[: bounds[0]]] = "train"
    split[order[bounds[0]: bounds[1]]] = "valid"
    split[order[bounds[1]:]] = "test"
    return split
