"""Denoisers side by side: the pipeline (items -> label -> aggregate -> neighbors -> denoise) with each
denoiser, then one fixed classifier on the frozen MiniLM embeddings, on three datasets.

    python benchmarks/denoise.py --json OUT [--datasets semeval-mixtral babe trec] [--denoisers ...]
    python benchmarks/denoise.py --scale [--scale-n 1000000]   # neighbors stage on generated vectors

The classifier is the same for every denoiser: a scikit-learn LogisticRegression (lbfgs) on the
frozen sentence embeddings, trained on the refined soft labels (each train item expanded into one
row per class with sample weight = item weight x class probability), its C picked from {0.1, 1, 10}
by accuracy against the refined *valid* labels (never gold). Gold labels are read only to score.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import parse_config  # noqa: E402
from pipeline.data import mark_entities  # noqa: E402
from pipeline.denoise.guard import harmful, kept_label_agreement  # noqa: E402
from pipeline.metrics import accuracy, expected_calibration_error  # noqa: E402
from pipeline.run import proba_columns, run_pipeline  # noqa: E402

SHARED = ROOT.parent / "shared" / "datasets"
DENOISERS = ["none", "knn", "confident-learning", "sidyp"]
GUARD = 0.01  # the default denoise.guard tolerance


def prepare_semeval_mixtral(out: Path) -> dict:
    """One CSV of the three splits; text = original_sent with entity markers taken from the aligned
    WRENCH semeval spans (same sentences in the same order; rows that do not match stay unmarked)."""
    classes = json.loads((SHARED / "wrench/semeval/label.json").read_text())
    frames = []
    for split in ("train", "valid", "test"):
        d = pd.read_csv(SHARED / f"llm/semeval-mixtral-fewshot/{split}.csv")
        wrench = list(json.loads((SHARED / f"wrench/semeval/{split}.json").read_text()).values())
        texts = []
        for i, sent in enumerate(d["original_sent"]):
            ex = wrench[i]["data"] if i < len(wrench) else {}
            same = ex.get("text") == sent
            texts.append(mark_entities(sent, ex["span1"], ex["span2"]) if same else sent)
        frames.append(pd.DataFrame({"id": [f"{split}-{i}" for i in range(len(d))], "text": texts,
                                    "label": d["true_label"], "split": split, "mixtral": d["noisy_label"]}))
    path = out / "semeval-mixtral.csv"
    pd.concat(frames).to_csv(path, index=False)
    return {"path": str(path), "classes": [classes[str(i)] for i in range(len(classes))],
            "annotation_columns": ["mixtral"], "id_column": "id"}


def prepare_babe(out: Path) -> dict:
    d = pd.read_csv(SHARED / "llm/babe/zero-shot.csv", dtype=str)
    path = out / "babe.csv"
    pd.DataFrame({"text": d["text"], "label": d["label"], "gpt_3_5": d["gpt_3_5_label"]}).to_csv(path, index=False)
    return {"path": str(path), "classes": ["0", "1"], "annotation_columns": ["gpt_3_5"], "id_column": None,
            "split_column": None, "split_fractions": (0.6, 0.2, 0.2)}


def dataset_configs(work: Path) -> dict[str, dict]:
    work.mkdir(parents=True, exist_ok=True)
    return {"semeval-mixtral": lambda: prepare_semeval_mixtral(work),
            "babe": lambda: prepare_babe(work),
            "trec": lambda: {"path": str(SHARED / "wrench/trec"), "format": "wrench"}}


def fixed_classifier(emb: np.ndarray, targets: np.ndarray, weights: np.ndarray, split: np.ndarray,
                     seed: int = 0) -> np.ndarray:
    """(N, K) probabilities of the benchmark's fixed classifier (see the module docstring)."""
    from sklearn.linear_model import LogisticRegression

    n_classes = targets.shape[1]
    train = np.flatnonzero((split == "train") & (weights > 0))
    rows, cls = np.nonzero(targets[train] > 1e-3)
    x = emb[train[rows]]
    y = cls
    w = weights[train[rows]] * targets[train[rows], cls]
    valid = np.flatnonzero(split == "valid")
    best = None
    for c in (0.1, 1.0, 10.0):
        clf = LogisticRegression(C=c, max_iter=3000, random_state=seed).fit(x, y, sample_weight=w)
        proba = np.zeros((len(emb), n_classes))
        proba[:, clf.classes_] = clf.predict_proba(emb)
        score = accuracy(targets[valid].argmax(1), proba[valid].argmax(1)) if len(valid) else 0.0
        if best is None or score > best[0]:
            best = (score, proba)
    return best[1]


def run_dataset(name: str, data: dict, denoisers: list[str], work: Path, seed: int) -> list[dict]:
    rows = []
    for denoiser in denoisers:
        raw = {"name": name if seed == 0 else f"{name}-seed{seed}", "output_dir": str(work / "runs"), "seed": seed,
               "data": data,
               "aggregate": {"method": "majority"}, "denoise": {"method": denoiser, "guard": None}}
        cfg = parse_config(raw, source=f"benchmark {name}")
        start = time.perf_counter()
        run_dir = run_pipeline(cfg, progress=False, until="denoise")
        state = json.loads((run_dir / ".state/denoise.json").read_text())
        items = pd.read_parquet(run_dir / "items.parquet")
        refined = pd.read_parquet(run_dir / "refined.parquet")
        emb = np.load(run_dir / "embeddings.npy")
        split, gold = items["split"].to_numpy(), items["gold"].to_numpy()
        targets, weights = proba_columns(refined, "r_"), refined["weight"].to_numpy()
        fit_start = time.perf_counter()
        proba = fixed_classifier(emb, targets, weights, split, seed)
        fit_seconds = time.perf_counter() - fit_start
        train, test = (split == "train") & (gold >= 0), (split == "test") & (gold >= 0)
        # the guard (as the denoise stage applies it by default), judged on noisy valid labels only
        agg = pd.read_parquet(run_dir / "aggregate.parquet")
        covered = agg["covered"].to_numpy()
        raw = np.where(covered, proba_columns(agg, "p_").argmax(1), -1)  # as the denoisers read it
        new = np.where(weights > 0, refined["label"].to_numpy(), -1)
        g = kept_label_agreement(emb, raw, covered.astype(float), new, weights, split)
        g_raw, g_new = g["raw"], g["refined"]
        aside = denoiser != "none" and harmful(g, GUARD)
        kept = train & (weights > 0)
        summary = state["summary"]
        row = {"dataset": name, "denoiser": denoiser, "seed": seed,
               "label_accuracy": accuracy(gold[kept], refined["label"].to_numpy()[kept]),
               "test_accuracy": accuracy(gold[test], proba[test].argmax(1)),
               "ece": expected_calibration_error(gold[test], proba[test]),
               "seconds": state["seconds"] + fit_seconds,
               "train_coverage": float(kept.sum() / max(train.sum(), 1)),
               "changed": summary.get("changed"), "changes_right": summary.get("changes_right"),
               "stepped_aside": bool(aside), "guard_raw": g_raw, "guard_refined": g_new, "guard_stderr": g["stderr"], "guard_kept": g["kept"],
               "pipeline_seconds": time.perf_counter() - start}
        rows.append(row)
        print(json.dumps(row), flush=True)
    # the guarded result: a denoiser that stepped aside trains on the raw labels, i.e. equals `none`
    base = next((r for r in rows if r["denoiser"] == "none"), None)
    for r in rows:
        r["unguarded"] = {k: r[k] for k in ("label_accuracy", "test_accuracy", "ece", "train_coverage")}
        if r["stepped_aside"] and base is not None:
            r.update({k: base[k] for k in ("label_accuracy", "test_accuracy", "ece", "train_coverage")})
    return rows


def scale(n: int, dim: int, n_classes: int, k: int, seed: int) -> dict:
    """The neighbors stage's index + distribution + candidate sets on n generated (n, dim) vectors:
    clustered unit vectors with noisy labels and label-model confidences. Reports seconds and peak RSS."""
    import logging

    import faiss

    from pipeline.neighbors.dynamics import candidate_sets, clean_by_confidence
    from pipeline.neighbors.index import choose_index_kind, ivf_join_search, knn_label_distribution

    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_classes, dim)).astype(np.float32)
    gold = rng.integers(0, n_classes, n)
    vecs = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        g = gold[start:start + 100_000]
        vecs[start:start + len(g)] = centers[g] + 2.0 * rng.standard_normal((len(g), dim), dtype=np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    noisy = np.where(rng.random(n) < 0.7, gold, rng.integers(0, n_classes, n))
    confidence = rng.random(n)
    onehot = np.zeros((n, n_classes), np.float32)
    onehot[np.arange(n), noisy] = 1
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    clean = clean_by_confidence(confidence, np.ones(n, bool), 0.5)
    knn = knn_label_distribution(vecs, onehot, clean, k=k, seed=seed)
    cands = candidate_sets(knn)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # recall@k of the approximate search, against an exact search for 1000 random items (not timed)
    pool_idx = np.flatnonzero(clean)
    probe = np.sort(rng.choice(n, 1000, replace=False))
    exact = faiss.IndexFlatIP(dim)
    exact.add(vecs[pool_idx])
    true_nbrs = exact.search(vecs[probe], k + 1)[1]
    found = ivf_join_search(vecs, pool_idx, k + 1, seed=seed)[1][probe] if choose_index_kind(
        len(pool_idx)) == "ivf-join" else true_nbrs
    recall = float(np.mean([len(set(a) & set(b)) / (k + 1) for a, b in zip(found, true_nbrs)]))
    return {"n": n, "dim": dim, "k": k, "index": choose_index_kind(int(clean.sum())),
            "faiss_threads": faiss.omp_get_max_threads(), "seconds": seconds, "recall_at_k": recall,
            "peak_rss_mib": peak,
            "rss_before_mib": rss0, "knn_argmax_accuracy_vs_generating_class": float(np.mean(knn.argmax(1) == gold)),
            "noisy_label_accuracy": float(np.mean(noisy == gold)), "certain_fraction": float(cands.certain.mean())}


def main() -> None:
    global SHARED
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--datasets", nargs="+", default=["semeval-mixtral", "babe", "trec"])
    ap.add_argument("--denoisers", nargs="+", default=DENOISERS)
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-denoise")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--data-root", type=Path, default=SHARED, help="the shared datasets folder")
    ap.add_argument("--scale", action="store_true", help="time the neighbors stage on generated vectors instead")
    ap.add_argument("--scale-n", type=int, default=1_000_000)
    args = ap.parse_args()
    if args.scale:
        result = scale(args.scale_n, 384, 10, 10, args.seeds[0])
        print(json.dumps(result))
        if args.json:
            args.json.write_text(json.dumps(result, indent=2))
        return
    SHARED = args.data_root
    if not SHARED.exists():
        sys.exit(f"shared datasets not found at {SHARED} (give --data-root)")
    configs = dataset_configs(args.work / "data")
    results = []
    for name in args.datasets:
        data = configs[name]()
        for seed in args.seeds:
            results += run_dataset(name, data, args.denoisers, args.work, seed)
    print(f"\n{'dataset':16} {'denoiser':20} {'label acc':>9} {'test acc':>8} {'ECE':>6} {'seconds':>8}  aside"
          "  | unguarded: label acc, test acc, ECE")
    for r in results:
        u = r["unguarded"]
        print(f"{r['dataset']:16} {r['denoiser']:20} {r['label_accuracy']:9.4f} {r['test_accuracy']:8.4f} "
              f"{r['ece']:6.4f} {r['seconds']:8.1f}  {str(r['stepped_aside']):5}  | {u['label_accuracy']:.4f}, "
              f"{u['test_accuracy']:.4f}, {u['ece']:.4f}")
    base = {(r["dataset"], r["seed"]): r for r in results if r["denoiser"] == "none"}
    print("\ntest accuracy minus none (points), guarded | unguarded; mean over seeds")
    for dataset in dict.fromkeys(r["dataset"] for r in results):
        for denoiser in dict.fromkeys(r["denoiser"] for r in results):
            rs = [r for r in results if r["dataset"] == dataset and r["denoiser"] == denoiser
                  and (dataset, r["seed"]) in base and denoiser != "none"]
            if rs:
                g = [100 * (r["test_accuracy"] - base[dataset, r["seed"]]["test_accuracy"]) for r in rs]
                u = [100 * (r["unguarded"]["test_accuracy"] - base[dataset, r["seed"]]["test_accuracy"]) for r in rs]
                print(f"{dataset:16} {denoiser:20} {np.mean(g):+6.2f} | {np.mean(u):+6.2f}  (seeds: "
                      + ", ".join(f"{x:+.1f}" for x in u) + ")")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": results}, indent=2))


if __name__ == "__main__":
    main()
