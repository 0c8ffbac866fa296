"""Thin I/O for artifacts and caches: atomic writes (a reader never sees half a file) and content fingerprints."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd


def atomic_path(path: Path) -> Path:
    """The temporary file `atomic_write` writes before it replaces `path`."""
    return path.with_name(f".{path.name}.tmp")


@contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path` in one step, on an error it is removed
    and `path` is left as it was. Creates the parent folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    with atomic_write(path) as tmp:
        frame.to_parquet(tmp, index=False)


def write_json(obj, path: Path) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=_json_default))


def write_text(text: str, path: Path) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(text)


def write_npy(array: np.ndarray, path: Path) -> None:
    with atomic_write(path) as tmp, tmp.open("wb") as fh:
        np.save(fh, array)


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
