"""Valid-only evidence for `train.select_by` (issue 6, session 5): which model-selection criterion to use.

Protocol (fixed before any run): each data set's gold valid split is cut in two halves by one seeded
permutation (`np.random.default_rng(12345)`, the same halves for every loss and seed). Half A plays the
valid split: the loss search, early stopping and the temperature see only A, selecting by `--select-by`.
Half B is held out and scored: accuracy (binary F1 of spam for sms), NLL and ECE (15 bins) at the temperature
fitted on A, and the ECE before it. Test labels are never read. Same setup as the end-model benchmark
otherwise (head mode on cached encoder states, the default label model's posteriors as targets, every loss
with its search, 3 seeds).

`--valid noisy` selects (and fits the temperature) on half A's noisy labels instead, the pipeline's
default without gold; half B is still scored on gold (valid gold only, never test).

Decision rule (fixed before any run): `nll` becomes the default if, over all data sets x losses x seeds, its
mean half-B NLL is lower than `accuracy`'s and its mean half-B score is not lower by more than 0.005;
otherwise `accuracy` stays.

    python benchmarks/selection.py --select-by nll --json runs/select-nll.json \
        --features runs/feat --data-root ../shared/datasets
    python benchmarks/selection.py --compare runs/select-accuracy.json runs/select-nll.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from endmodel import DATASETS, LOSSES, features_path, load_dataset, score  # noqa: E402

from pipeline.calibration import nll, scaled_proba  # noqa: E402
from pipeline.config import TrainConfig  # noqa: E402
from pipeline.metrics import expected_calibration_error  # noqa: E402


def halves(n: int, seed: int = 12345) -> tuple[np.ndarray, np.ndarray]:
    """Indices of valid halves A (selection) and B (held out)."""
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[: n // 2]), np.sort(perm[n // 2:])


def run(args) -> None:
    import torch

    from pipeline.train.search import train_classifier
    from pipeline.train.trainer import head_logits, uses_entity_pooling

    torch.set_num_threads(1)
    root, results = Path(args.data_root), []
    for name in args.datasets:
        d = load_dataset(name, root)
        entity = uses_entity_pooling(TrainConfig(mode="head", entity_pooling=args.entity_pooling), d["train"]["texts"])
        cached = features_path(args.features, d, "mean+entity" if entity else "mean", 128)  # endmodel.py --features
        if not cached.exists():
            sys.exit(f"{cached}: no cached encoder states; run benchmarks/endmodel.py --features {args.features} first")
        with np.load(cached) as z:
            feats = {s: z[s] for s in ("train", "valid")}
        a, b = halves(len(d["valid"]["gold"]))
        gold = d["valid"]["gold"]
        select_labels = gold if args.valid == "gold" else d["valid"]["noisy_hard"]  # -1: no vote, unknown
        for seed in range(args.seeds):
            for loss in args.losses:
                cfg = TrainConfig(mode="head", loss=loss, select_by=args.select_by, valid_labels=args.valid,
                                  entity_pooling=args.entity_pooling)
                start = time.perf_counter()
                clf = train_classifier(d["train"]["texts"], d["train"]["targets"], d["train"]["weights"], d["classes"], cfg,
                                valid_texts=[d["valid"]["texts"][i] for i in a], valid_labels=select_labels[a], seed=seed,
                                progress=False, features=(feats["train"], feats["valid"][a]),
                                valid_targets=d["valid"]["targets"][a])
                logits = head_logits(clf, feats["valid"][b])
                cal = scaled_proba(logits, clf.temperature)
                row = {"dataset": name, "loss": loss, "seed": seed, "select_by": args.select_by, "valid": args.valid,
                       "entity_pooling": entity,
                       "score_b": score(name, gold[b], cal), "nll_b": nll(logits, gold[b], clf.temperature),
                       "ece_b": expected_calibration_error(gold[b], cal),
                       "ece_b_raw": expected_calibration_error(gold[b], scaled_proba(logits, 1.0)),
                       "best_epoch": clf.best_epoch, "loss_params": clf.loss_params, "temperature": clf.temperature,
                       "seconds": time.perf_counter() - start}
                results.append(row)
                print(f"[{name}] {loss:10s} seed {seed} {args.select_by}: B score {row['score_b']:.4f} NLL "
                      f"{row['nll_b']:.4f} ECE {row['ece_b']:.4f} epoch {clf.best_epoch} {clf.loss_params}", flush=True)
                Path(args.json).write_text(json.dumps({"results": results, "config": vars(args)}, indent=1))


def compare(paths: list[str]) -> None:
    frame = pd.concat([pd.DataFrame(json.loads(Path(p).read_text())["results"]) for p in paths])
    metrics = ["score_b", "nll_b", "ece_b", "ece_b_raw", "best_epoch"]
    table = frame.pivot_table(index=["dataset", "loss"], columns="select_by", values=metrics[:3], aggfunc="mean")
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    print("\nper data set (mean over losses and seeds):")
    print(frame.groupby(["dataset", "select_by"])[metrics].mean().unstack().to_string(float_format=lambda v: f"{v:.4f}"))
    print("\nall runs:")
    print(frame.groupby("select_by")[metrics].mean().to_string(float_format=lambda v: f"{v:.4f}"))
    # the best-calibrated loss per data set on half B (for the ECE <= 0.05 question)
    best = frame.groupby(["dataset", "select_by", "loss"])["ece_b"].mean().groupby(["dataset", "select_by"]).min()
    print("\nlowest mean half-B ECE over losses:")
    print(best.unstack().to_string(float_format=lambda v: f"{v:.4f}"))
    paired = frame.pivot_table(index=["dataset", "loss", "seed"], columns="select_by", values=["score_b", "nll_b"])
    if {"accuracy", "nll"} <= set(frame["select_by"]):
        dn = paired["nll_b"]["nll"] - paired["nll_b"]["accuracy"]
        ds = paired["score_b"]["nll"] - paired["score_b"]["accuracy"]
        print(f"\npaired nll - accuracy over {len(dn)} runs: NLL {dn.mean():+.4f} (lower in {(dn < 0).sum()}, higher in "
              f"{(dn > 0).sum()}), score {ds.mean():+.4f} (higher in {(ds > 0).sum()}, lower in {(ds < 0).sum()})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--select-by", choices=["accuracy", "nll"])
    ap.add_argument("--json")
    ap.add_argument("--valid", choices=["gold", "noisy"], default="gold",
                    help="labels of half A used for selection and the temperature (half B is always scored on gold)")
    ap.add_argument("--compare", nargs="+", help="print the comparison of these JSON outputs and exit")
    ap.add_argument("--datasets", nargs="+", default=DATASETS, choices=DATASETS)
    ap.add_argument("--losses", nargs="+", default=LOSSES, choices=LOSSES)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--entity-pooling", default="auto", choices=["auto", "on", "off"], help="train.entity_pooling")
    ap.add_argument("--features", default=str(ROOT / "runs" / "feat"))
    ap.add_argument("--data-root", default=str(ROOT.parent / "shared" / "datasets"))
    args = ap.parse_args()
    if args.compare:
        compare(args.compare)
    else:
        run(args)


if __name__ == "__main__":
    main()
