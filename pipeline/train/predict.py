"""`labelpipe predict`: calibrated class probabilities for new texts from a trained run or model folder.

Reads CSV / JSONL / Parquet, writes the same rows with `pred` (class name), `confidence` and one
`p_<class>` column per class, in the output file's format (by suffix).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..artifacts import atomic_write
from ..data import is_entity_marked, read_table
from ..errors import InputError, LabelpipeError
from .trainer import MODEL_META, load_trained, predict_proba

log = logging.getLogger("labelpipe")
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}


def resolve_model_dir(path: str | Path) -> Path:
    """The model folder of a run folder (`RUN/model`) or a model folder itself."""
    path = Path(path)
    if not path.exists():
        raise LabelpipeError(f"{path}: not found (give a run folder or its model/ folder)")
    for candidate in (path, path / "model"):
        if (candidate / MODEL_META).is_file():
            return candidate
    raise LabelpipeError(f"{path}: not a labelpipe run or model folder (no {MODEL_META} in it or in model/); "
                         "train one with `labelpipe run`")


def _format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(path, f"unknown file type '{path.suffix}'; use .csv, .jsonl or .parquet")
    return fmt


def write_table(frame: pd.DataFrame, path: str | Path) -> None:
    path = Path(path)
    fmt = _format(path)
    with atomic_write(path) as tmp:
        if fmt == "csv":
            frame.to_csv(tmp, index=False)
        elif fmt == "jsonl":
            frame.to_json(tmp, orient="records", lines=True, force_ascii=False)
        else:
            frame.to_parquet(tmp, index=False)


def predict_file(model: str | Path, input_path: str | Path, output_path: str | Path, text_column: str = "text",
                 batch_size: int = 64, progress: bool = True) -> pd.DataFrame:
    """Predict every row of `input_path` and write `output_path`. Returns the written frame.

    Input errors (missing text column, empty texts, empty file) are raised before the model loads.
    """
    _format(Path(output_path))
    _format(Path(input_path))  # csv / jsonl / parquet in, the same out
    frame = read_table(input_path)
    if text_column not in frame.columns:
        raise InputError(input_path, f"text column not found; columns are: {', '.join(map(str, frame.columns))} "
                         "(use --text-column)", field=text_column)
    texts = frame[text_column]
    empty = texts.isna() | (texts.astype(str).str.strip() == "")
    if empty.any():
        row = int(np.flatnonzero(empty.to_numpy())[0]) + 1
        raise InputError(input_path, f"empty text ({int(empty.sum())} such rows)", row=row, field=text_column)
    clf = load_trained(resolve_model_dir(model))
    texts = texts.astype(str).tolist()
    if getattr(clf.model.config, "entity_markers", None) is not None:
        unmarked = sum(not is_entity_marked(t) for t in texts)
        if unmarked:
            log.warning("%d of %d texts have no <e1>..</e1> <e2>..</e2> entity markers, which this model was trained "
                        "with (train.entity_pooling): their entity features fall back to the sentence vector, and "
                        "their predictions are likely worse; mark the entity pair as in training", unmarked, len(texts))
    proba = predict_proba(clf, texts, batch_size=batch_size, progress=progress)
    out = frame.copy()
    out["pred"] = [clf.classes[i] for i in proba.argmax(axis=1)]
    out["confidence"] = proba.max(axis=1)
    for k, name in enumerate(clf.classes):
        out[f"p_{name}"] = proba[:, k]
    write_table(out, output_path)
    return out
