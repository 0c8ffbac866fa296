"""Persistent answer cache (sqlite3, WAL): one row per (backend identity, prompt, verbalizers).

A labeler writes each finished batch in one transaction, so a run killed mid-labeling resumes from
the last finished batch, and a re-run of the same prompts makes no model calls. Several processes
may share one cache file (WAL mode, busy timeout).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def cache_key(identity: dict, prompt: str, verbalizers: list[list[str]]) -> str:
    """sha256 of the backend identity (backend, model, decoding parameters), exact prompt and label words."""
    blob = json.dumps({"identity": identity, "prompt": prompt, "verbalizers": verbalizers},
                      sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class CachedAnswer:
    """One prompt's answer: proba (K,), class log-probs (K,) or None, raw text, abstain, prompt tokens."""

    proba: np.ndarray
    raw: str
    abstain: bool
    prompt_tokens: int = 0
    logprob: np.ndarray | None = None


class LLMCache:
    """sqlite-backed map cache_key -> CachedAnswer. `path` is created with its folder."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
                         "created REAL NOT NULL)")

    def get_many(self, keys: list[str]) -> dict[str, CachedAnswer]:
        found: dict[str, CachedAnswer] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):
            chunk = unique[start:start + 500]
            rows = self._db.execute(f"SELECT key, value FROM answers WHERE key IN ({','.join('?' * len(chunk))})",
                                    chunk).fetchall()
            for key, value in rows:
                found[key] = _decode(value)
        return found

    def put_many(self, answers: dict[str, CachedAnswer]) -> None:
        """Write answers in one transaction (all or nothing)."""
        now = time.time()
        rows = [(k, _encode(a), now) for k, a in answers.items()]
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT OR REPLACE INTO answers (key, value, created) VALUES (?, ?, ?)", rows)

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]

    def close(self) -> None:
        self._db.close()


def _encode(a: CachedAnswer) -> str:
    return json.dumps({"p": [float(x) for x in a.proba], "r": a.raw, "a": bool(a.abstain), "t": int(a.prompt_tokens),
                       "l": None if a.logprob is None else [float(x) for x in a.logprob]})


def _decode(value: str) -> CachedAnswer:
    d = json.loads(value)
    return CachedAnswer(np.asarray(d["p"], float), d["r"], d["a"], d["t"],
                        None if d["l"] is None else np.asarray(d["l"], float))
