"""Benchmark the audit on LLMBar (88 judge configurations) and BABE zero-shot (13 LLM annotators).

Both sets have gold for every item, so each estimate is compared with the truth:
- accuracy_mae: mean |estimated - true accuracy| over annotators, without gold (label model alone) and with
  a random 50-item gold subset (prediction-powered correction; mean over the subsets); the anchor is the
  plain agreement-with-majority estimate and, with gold, the gold-only estimate;
- flag_precision_at_50: share of the 50 top-flagged items whose majority label is truly wrong (with gold,
  the gold items are left out of the ranking and of the precision);
- prevalence_ci_coverage / _width: the corrected 95% interval for the true share of the positive class
  (last class) over random 50-item gold subsets, next to naive_ci_* (the labels' share, Wald interval, no
  gold) and gold_only_ci_* (the gold subset alone).

    python benchmarks/audit.py --json runs/bench-audit.json [--subsets 200] [--method dawid_skene]
    python benchmarks/audit.py --datasets babe-2shot,babe-8shot-cot --seed 1000 --subsets 40   # development
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.audit import core, load_annotations, stats  # noqa: E402

DATA = ROOT.parent / "shared" / "datasets"
SETS = {"llmbar": DATA / "judge/llmbar/llmbar.jsonl", "babe": DATA / "llm/babe/zero-shot.csv",
        # development sets (same format as `babe`, other prompts): tune on these, not on the benchmark's own
        "babe-2shot": DATA / "llm/babe/2-shot.csv", "babe-8shot-cot": DATA / "llm/babe/8-shot-CoT.csv"}


def true_accuracy(votes: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(M,) accuracy of each annotator on the items it labeled."""
    voted = votes >= 0
    return ((votes == y[:, None]) & voted).sum(axis=0) / np.maximum(voted.sum(axis=0), 1)


def flag_precision(data, proba, y, exclude: np.ndarray, knn=None, top: int = 50) -> float:
    """Share of the `top` flagged items (not in `exclude`) whose majority label differs from y."""
    hidden = data.gold.copy()
    hidden[:] = -1  # rank by the posterior; gold items are dropped below, not used as evidence
    view = core.AuditData(data.items, data.annotators, data.classes, data.votes, hidden, data.text, data.source)
    flagged = core.flag_items(view, proba, knn, top=len(data.items))
    pos = {it: i for i, it in enumerate(data.items)}
    idx = np.array([pos[it] for it in flagged["item"]], dtype=int)
    idx = idx[~exclude[idx]][:top]
    majority = stats.majority_labels(data.votes, len(data.classes), proba)
    return float((majority[idx] != y[idx]).mean()) if len(idx) else float("nan")


def bench_dataset(name: str, path: Path, method: str, subsets: int, n_gold: int, seed: int, neighbors: bool,
                  stack: bool = True, sharpen: bool = True) -> list[dict]:
    data = load_annotations(path)
    y = data.gold.copy()
    votes, k = data.votes, len(data.classes)
    n = len(y)
    data.gold[:] = -1
    acc = true_accuracy(votes, y)
    positive = k - 1
    rows: list[dict] = []

    posterior = method

    def add(metric: str, gold_items: int, value: float, m: str | None = None) -> None:
        rows.append({"dataset": name, "metric": metric, "gold_items": gold_items, "value": float(value),
                     "method": m or (posterior if gold_items else method)})

    t0 = time.perf_counter()
    proba0 = core._fit(method, votes, k, None, seed)
    est0 = np.nanmean(stats.soft_accuracy(votes, proba0), axis=0)
    add("accuracy_mae", 0, np.abs(est0 - acc).mean())
    majority = stats.majority_labels(votes, k)
    mv_est = true_accuracy(votes, majority)
    add("accuracy_mae", 0, np.abs(mv_est - acc).mean(), "anchor: agreement with majority")

    knn0, emb = None, None
    if neighbors and data.text is not None:
        from pipeline.neighbors.embed import embed_texts
        from pipeline.neighbors.index import knn_label_distribution

        emb = embed_texts(list(data.text), "default", progress=False)
        knn0 = knn_label_distribution(emb, proba0, np.ones(n, bool))
    add("flag_precision_at_50", 0, flag_precision(data, proba0, y, np.zeros(n, bool), knn0))
    naive = stats.naive_proportion(proba0.argmax(axis=1) == positive)
    truth = float((y == positive).mean())

    mae, mae_gold_only, prec, cover, width, g_cover, g_width, temps = [], [], [], [], [], [], [], []
    rng = np.random.default_rng(seed)
    for s in range(subsets):
        labeled = np.zeros(n, bool)
        labeled[rng.choice(n, n_gold, replace=False)] = True
        gold = np.where(labeled, y, -1)
        proba, oof, posterior = core.gold_posterior(method, votes, proba0, gold, folds=5, seed=seed + s,
                                                    stack=stack, sharpen=sharpen)
        temps.append(float(posterior.split("temperature ")[1].rstrip(")")) if "temperature" in posterior else 1.0)
        posterior = posterior.split(" (temperature")[0]
        est = core.corrected_accuracy(votes, proba, oof, gold)
        mae.append(np.nanmean([abs(e.estimate - a) if e else np.nan for e, a in zip(est, acc)]))
        gold_only = np.array([(votes[labeled & (votes[:, j] >= 0), j] == y[labeled & (votes[:, j] >= 0)]).mean()
                              for j in range(votes.shape[1])])
        mae_gold_only.append(np.nanmean(np.abs(gold_only - acc)))
        if s < min(subsets, 50):  # flagging needs the full ranking: 50 subsets are plenty
            prec.append(flag_precision(data, proba, y, labeled, knn0))  # neighbours of the no-gold labels
        prev = core.label_prevalence(proba, oof, gold, proba.argmax(axis=1))[positive]
        cover.append(prev["corrected_low"] <= truth <= prev["corrected_high"])
        width.append(prev["corrected_high"] - prev["corrected_low"])
        g_cover.append(prev["gold_only_low"] <= truth <= prev["gold_only_high"])
        g_width.append(prev["gold_only_high"] - prev["gold_only_low"])
    add("accuracy_mae", n_gold, np.mean(mae))
    add("accuracy_mae", n_gold, np.mean(mae_gold_only), "anchor: gold items only")
    add("flag_precision_at_50", n_gold, np.mean(prec))
    add("prevalence_ci_coverage", n_gold, np.mean(cover))
    add("prevalence_ci_width", n_gold, np.mean(width))
    add("naive_ci_coverage", 0, float(naive.low <= truth <= naive.high))
    add("naive_ci_width", 0, naive.width)
    add("gold_only_ci_coverage", n_gold, np.mean(g_cover), "anchor: gold items only")
    add("gold_only_ci_width", n_gold, np.mean(g_width), "anchor: gold items only")
    add("stacker_temperature_mean", n_gold, np.mean(temps))
    print(f"{name}: {n} items, {votes.shape[1]} annotators, method {method}, true positive share {truth:.3f}, "
          f"naive {naive.estimate:.3f}; {subsets} subsets in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--datasets", default="llmbar,babe", help=f"comma-separated, from {', '.join(SETS)}, or paths")
    ap.add_argument("--method", default=None, help="label model (default: the audit's default)")
    ap.add_argument("--subsets", type=int, default=200)
    ap.add_argument("--gold", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-neighbors", action="store_true", help="skip kNN neighbour evidence (BABE text)")
    ap.add_argument("--no-stack", action="store_true", help="with gold, use the label model, not the stacker")
    ap.add_argument("--no-sharpen", action="store_true", help="no temperature on the stacker's posterior")
    args = ap.parse_args(argv)
    method = args.method or core.default_method()
    results = []
    for name in args.datasets.split(","):
        path = SETS.get(name, Path(name))
        if not path.exists():
            print(f"skip {name}: {path} not found", file=sys.stderr)
            continue
        results += bench_dataset(name, path, method, args.subsets, args.gold, args.seed,
                                 neighbors=not args.no_neighbors and name.startswith("babe"), stack=not args.no_stack,
                                 sharpen=not args.no_sharpen)
    print(f"{'dataset':8} {'metric':24} {'gold':>4}  {'value':>7}  method")
    for r in results:
        print(f"{r['dataset']:8} {r['metric']:24} {r['gold_items']:>4}  {r['value']:7.4f}  {r['method']}")
    for name in {r["dataset"] for r in results}:
        rows = [r for r in results if r["dataset"] == name]
        get = {(r["metric"], r["gold_items"], r["method"].startswith("anchor")): r["value"] for r in rows}
        ours, anchor = get[("accuracy_mae", args.gold, False)], get[("accuracy_mae", args.gold, True)]
        w, gw = get[("prevalence_ci_width", args.gold, False)], get[("gold_only_ci_width", args.gold, True)]
        print(f"{name}: accuracy MAE ours / gold-only = {ours / anchor:.2f}; "
              f"CI width corrected / gold-only = {w / gw:.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
