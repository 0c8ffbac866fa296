"""Scale test: Dawid-Skene on generated votes, N items x M labelers x K classes (issue 3).

Usage: python benchmarks/ds_scale.py [--items 1000000] [--labelers 100] [--classes 4] [--abstain 0.3]
Prints fit seconds, iterations, accuracy against the generated truth, the accuracy-recovery error and
the process's peak resident memory (which includes the int8 vote matrix and its generation).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline.labelmodels import DawidSkene  # noqa: E402


def generate(n: int, m: int, k: int, abstain: float, seed: int = 0, chunk: int = 100_000):
    """int8 votes (N, M), truth (N,), per-labeler accuracies (M,) in [0.35, 0.9]; errors uniform."""
    rng = np.random.default_rng(seed)
    acc = rng.uniform(0.35, 0.9, m)
    y = rng.integers(0, k, n)
    votes = np.empty((n, m), dtype=np.int8)
    for s in range(0, n, chunk):
        yy = y[s:s + chunk, None]
        r = rng.random((len(yy), m), dtype=np.float32)
        wrong = (yy + rng.integers(1, k, (len(yy), m))) % k
        block = np.where(r < acc[None, :].astype(np.float32), yy, wrong)
        block[rng.random((len(yy), m), dtype=np.float32) < abstain] = -1
        votes[s:s + chunk] = block
    return votes, y, acc


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--labelers", type=int, default=100)
    ap.add_argument("--classes", type=int, default=4)
    ap.add_argument("--abstain", type=float, default=0.3)
    ap.add_argument("--max-iter", type=int, default=100)
    ap.add_argument("--tol", type=float, default=1e-6, help="0 runs all max-iter EM steps")
    ap.add_argument("--json")
    args = ap.parse_args()
    votes, y, acc = generate(args.items, args.labelers, args.classes, args.abstain)
    start = time.perf_counter()
    model = DawidSkene(max_iter=args.max_iter, tol=args.tol).fit(votes, args.classes)
    fit_s = time.perf_counter() - start
    pred = model.predict(votes)
    est = np.einsum("mkk,k->m", model.confusion_, model.class_prior_)  # from the parameters, not a sample
    out = {"items": args.items, "labelers": args.labelers, "classes": args.classes, "abstain": args.abstain,
           "fit_seconds": round(fit_s, 2), "n_iter": model.n_iter_, "accuracy": float((pred == y).mean()),
           "max_abs_accuracy_error": float(np.abs(est - acc).max()),
           "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)}
    print(json.dumps(out))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
