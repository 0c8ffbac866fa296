"""Thin I/O for run artifacts: atomic writes and content fingerprints."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd


def atomic_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    tmp = atomic_path(path)
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def write_json(obj, path: Path) -> None:
    tmp = atomic_path(path)
    tmp.write_text(json.dumps(obj, indent=2, default=_json_default))
    os.replace(tmp, path)


def write_npy(array: np.ndarray, path: Path) -> None:
    tmp = atomic_path(path)
    with tmp.open("wb") as fh:
        np.save(fh, array)
    os.replace(tmp, path)


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj)}")


def fingerprint(*parts) -> str:
    """A short stable hash of JSON-able parts, arrays and data frames."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, pd.DataFrame):
            h.update(pd.util.hash_pandas_object(part.astype(str), index=False).values.tobytes())
            h.update(",".join(map(str, part.columns)).encode())
        elif isinstance(part, np.ndarray):
            h.update(str(part.shape).encode() + str(part.dtype).encode())
            h.update(np.ascontiguousarray(part).tobytes())
        elif isinstance(part, bytes):
            h.update(part)
        else:
            h.update(json.dumps(part, sort_keys=True, default=_json_default).encode())
        h.update(b"\x1e")
    return h.hexdigest()[:20]


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:20]
