"""End-model benchmark: robust losses, head vs full fine-tuning, temperature scaling.

Trains, in one run, on the aggregated labels of ../shared/datasets/wrench/{youtube,sms,trec,semeval}
(the aggregate stage's default label model fitted on the train votes; `--label-model majority` for MV)
and on the Mixtral few-shot labels of ../shared/datasets/llm/semeval-mixtral-fewshot, with each loss
(same encoder, same epochs, several seeds), plus a line trained on the gold labels (the ceiling).
Model selection, early stopping and the temperature use the valid split: gold valid labels by default
(the WRENCH protocol; `--valid noisy` uses the noisy labels instead). Reports test accuracy (binary F1
of "spam" for sms), ECE (15 bins) before/after temperature scaling and seconds per training epoch;
`--calibration vector` adds the score and ECE after vector scaling (the `train.calibration` option).
The loss's own hyper-parameters are chosen on the same valid labels from a small grid
(`train.loss_search`, `pipeline.losses.LOSS_GRIDS`; default `auto`: in head mode, not in full mode;
`--loss-search off` trains every loss with its paper default). `seconds_per_epoch` is the chosen run's
own epoch time (the search excluded); `search_seconds` is the wall time of the whole search (every grid
point's training, valid scoring included).

    python benchmarks/endmodel.py --mode head --json out.json            # CPU: frozen encoder + linear head
    python benchmarks/endmodel.py --mode full --json out.json            # GPU: full fine-tuning
    python benchmarks/endmodel.py --mode head --features runs/feat --full-timing 480 --json out.json
        # CPU: head grid on cached sentence embeddings (runs/feat/states-<pooling>-<max length>-<texts hash>.npz)
        # + one full-fine-tuning epoch of trec timed on 480 items (--full-timing 100000: the whole epoch)
    python benchmarks/endmodel.py --json out.json --markdown             # the per-run markdown table

Rows are written to the JSON after each run, so an interrupted run keeps what it finished
(`--time-budget` stops starting new runs after that many seconds). Runs are ordered seed-major.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.calibration import scaled_proba  # noqa: E402
from pipeline.config import DataConfig, TrainConfig  # noqa: E402
from pipeline.data import load_items, mark_entities  # noqa: E402
from pipeline.labelmodels import DEFAULT_METHOD, LABEL_MODELS, make_label_model  # noqa: E402
from pipeline.metrics import expected_calibration_error  # noqa: E402

DATASETS = ["trec", "semeval-mixtral", "youtube", "semeval", "sms"]
LOSSES = ["ce", "soft_ce", "gce", "sce", "elr", "forward", "coteaching"]


def load_dataset(name: str, root: Path, label_model: str = DEFAULT_METHOD, entity_markers: bool = True) -> dict:
    """texts/gold per split, noisy train targets (N, K) and weights (N,) (0 = no labeler voted); the WRENCH
    sets' targets are the posteriors of `label_model` fitted on the train votes (no gold). `entity_markers`:
    semeval's entity pair wrapped in <e1>/<e2> (`data.entity_markers`; semeval-mixtral's sentences get the
    markers of the same sentences in WRENCH semeval)."""
    if name == "semeval-mixtral":
        folder = root / "llm" / "semeval-mixtral-fewshot"
        mapping = json.loads((root / "wrench" / "semeval" / "label.json").read_text())
        classes = [mapping[str(i)] for i in range(len(mapping))]
        parts = {s: pd.read_csv(folder / f"{s}.csv") for s in ("train", "valid", "test")}
        out = {"classes": classes}
        for s, df in parts.items():
            texts = df["original_sent"].astype(str).tolist()
            if entity_markers:  # same sentences, same order as WRENCH semeval (checked per row)
                wrench = [ex["data"] for ex in json.loads((root / "wrench" / "semeval" / f"{s}.json").read_text()).values()]
                texts = [mark_entities(t, w["span1"], w["span2"]) if i < len(wrench) and (w := wrench[i])["text"] == t
                         else t for i, t in enumerate(texts)]
            out[s] = {"texts": texts, "gold": df["true_label"].to_numpy(int), "noisy": df["noisy_label"].to_numpy(int)}
        for s in ("train", "valid"):  # noisy_label -1: Mixtral gave no usable answer (weight 0, no target)
            noisy = out[s]["noisy"]
            out[s]["targets"] = np.eye(len(classes))[noisy] * (noisy >= 0)[:, None]
            out[s]["weights"] = (noisy >= 0).astype(float)
        out["valid"]["noisy_hard"] = out["valid"]["noisy"]
        return out
    loaded = load_items(DataConfig(path=str(root / "wrench" / name), format="wrench", entity_markers=entity_markers))
    frame, classes = loaded.frame, loaded.classes
    votes = frame[loaded.annotation_columns].to_numpy(np.int64)
    split = frame["split"].to_numpy()
    params = {"tie_break": "prior"} if label_model == "majority" else {}
    model = make_label_model(label_model, seed=0, **params).fit(votes[split == "train"], len(classes))
    out = {"classes": classes}
    for s in ("train", "valid", "test"):
        m = split == s
        out[s] = {"texts": frame["text"][m].tolist(), "gold": frame["gold"].to_numpy(int)[m]}
    covered = (votes >= 0).any(axis=1)
    out["train"]["targets"] = model.predict_proba(votes[split == "train"])
    out["train"]["weights"] = covered[split == "train"].astype(float)
    valid_votes = votes[split == "valid"]
    valid_covered = (valid_votes >= 0).any(axis=1)
    out["valid"]["noisy_hard"] = np.where(valid_covered, model.predict(valid_votes), -1)
    out["valid"]["targets"] = model.predict_proba(valid_votes) * valid_covered[:, None]  # 0 rows: no vote
    return out


def features_path(folder: str | Path, d: dict, pooling: str, max_length: int) -> Path:
    """Cache file of a data set's encoder states: states-<pooling>-<max length>-<hash of the texts>.npz, keyed by
    the texts, so data sets with the same texts share it (semeval, semeval-mixtral) and another text preparation
    (e.g. without entity markers) gets another file."""
    texts = "\x1f".join(t for s in ("train", "valid", "test") for t in d[s]["texts"])
    return Path(folder) / f"states-{pooling}-{max_length}-{hashlib.sha256(texts.encode()).hexdigest()[:12]}.npz"


def score(name: str, gold: np.ndarray, proba: np.ndarray) -> float:
    pred = proba.argmax(axis=1)
    if name == "sms":
        return float(f1_score(gold, pred, pos_label=1, average="binary"))
    return float(np.mean(pred == gold))


def ece_floor(proba: np.ndarray, draws: int = 200, seed: int = 0) -> float:
    """Mean ECE of a perfectly calibrated model with these (N, K) probabilities: labels drawn from the
    probabilities themselves. The ECE estimator's own bias on a test set of this size (15 bins)."""
    rng = np.random.default_rng(seed)
    cum = np.cumsum(proba, axis=1)
    return float(np.mean([expected_calibration_error((rng.random((len(proba), 1)) > cum).sum(axis=1).clip(
        max=proba.shape[1] - 1), proba) for _ in range(draws)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", required=True, help="output JSON path (with --markdown: the JSON to read)")
    ap.add_argument("--markdown", action="store_true", help="print the per-run markdown table of --json and exit")
    ap.add_argument("--mode", choices=["head", "full"], default="head")
    ap.add_argument("--datasets", nargs="+", default=DATASETS, choices=DATASETS)
    ap.add_argument("--losses", nargs="+", default=LOSSES, choices=LOSSES)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--no-gold", action="store_true", help="skip the gold-label ceiling line")
    ap.add_argument("--valid", choices=["gold", "noisy"], default="gold")
    ap.add_argument("--label-model", default=DEFAULT_METHOD, choices=sorted(LABEL_MODELS),
                    help="label model that aggregates the WRENCH votes into training targets")
    ap.add_argument("--calibration", choices=["temperature", "vector"], default="temperature",
                    help="vector: also fit vector scaling on valid and report score_vector / ece_vector beside the "
                         "temperature-scaled figures")
    ap.add_argument("--loss-search", choices=["auto", "on", "off"], default="auto",
                    help="train.loss_search: grid search of the loss's hyper-parameters on valid (auto: head mode)")
    ap.add_argument("--select-by", choices=["auto", "accuracy", "nll"], default=None,
                    help="train.select_by: early-stopping epoch and loss-search winner by valid accuracy or by the "
                         "cross-fitted valid NLL after temperature scaling (default: TrainConfig's auto = nll on "
                         "gold valid labels, accuracy on noisy ones)")
    ap.add_argument("--model", default="default", help="encoder (HF id or local path)")
    ap.add_argument("--epochs", type=int, default=3, help="full-mode epochs")
    ap.add_argument("--head-epochs", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--data-root", default=str(ROOT.parent / "shared" / "datasets"))
    ap.add_argument("--features", default=None, help="head mode: folder of cached encoder states "
                    "(states-<pooling>-<max length>-<texts hash>.npz), read if there, else written")
    ap.add_argument("--no-entity-markers", action="store_true",
                    help="semeval(-mixtral): plain sentences, without <e1>/<e2> around the entity pair")
    ap.add_argument("--pooling", default="auto", choices=["auto", "mean", "cls", "max"],
                    help="head mode: sentence pooling (auto: the encoder's own)")
    ap.add_argument("--entity-pooling", default="auto", choices=["auto", "on", "off"],
                    help="head mode: also the entity pair's states on texts with <e1>/<e2> (train.entity_pooling; "
                         "auto: when most train texts are marked)")
    ap.add_argument("--limit", type=int, default=None, help="smoke test: first N train/valid/test items only")
    ap.add_argument("--time-budget", type=float, default=None, help="start no new run after this many seconds")
    ap.add_argument("--full-timing", type=int, default=None, metavar="N",
                    help="also time one epoch of full fine-tuning (loss ce) on N random train items of each "
                         "--full-timing-datasets set, extrapolated to the whole train split when N is smaller "
                         "(CPU: a whole epoch of trec took 115 s on one idle thread); written to the JSON's "
                         "`timing` list")
    ap.add_argument("--full-timing-datasets", nargs="+", default=["trec"], choices=DATASETS)
    ap.add_argument("--skip-grid", action="store_true", help="only the --full-timing measurement")
    ap.add_argument("--mixed-precision", nargs="+", default=["auto"], choices=["auto", "no", "bf16", "fp16"],
                    help="train.mixed_precision (auto: bf16 on a GPU that has it); the grid uses the first, "
                         "--full-timing times each dataset once per setting, in this order, in one process")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (head training always uses 1)")
    args = ap.parse_args()

    if args.markdown:
        print(markdown_table(json.loads(Path(args.json).read_text())))
        return
    import torch

    from pipeline.encoders import sentence_pooling
    from pipeline.train.search import train_classifier
    from pipeline.train.trainer import (
        encoder_states,
        head_logits,
        load_classifier,
        predict_logits,
        resolve_select_by,
        uses_entity_pooling,
    )

    torch.set_num_threads(args.threads)
    root = Path(args.data_root)
    if not root.exists():
        sys.exit(f"datasets not found: {root}")
    t0 = time.perf_counter()
    data = {name: load_dataset(name, root, args.label_model, not args.no_entity_markers) for name in args.datasets}
    if args.limit:
        for d in data.values():
            for s in ("train", "valid", "test"):
                d[s] = {k: v[:args.limit] for k, v in d[s].items()}
    features, embed_seconds = {}, {}
    if args.mode == "head":  # one frozen-encoder pass per dataset, shared by every loss and seed
        done = {}  # texts of all splits -> dataset already encoded (semeval-mixtral has semeval's texts)
        for name, d in data.items():
            start = time.perf_counter()
            texts = tuple(t for s in ("train", "valid", "test") for t in d[s]["texts"])
            entity = uses_entity_pooling(TrainConfig(mode="head", entity_pooling=args.entity_pooling), d["train"]["texts"])
            pooling = sentence_pooling(args.model, args.pooling) + ("+entity" if entity else "")
            cached = features_path(args.features, d, pooling, args.max_length) if args.features else None
            if texts in done:
                features[name], embed_seconds[name] = features[done[texts]], embed_seconds[done[texts]]
                print(f"[{name}] encoder states of {done[texts]} (the same texts)", flush=True)
                continue
            if cached is not None and cached.exists():
                with np.load(cached) as z:
                    features[name] = {s: z[s] for s in ("train", "valid", "test")}
                    embed_seconds[name] = float(z["seconds"]) if "seconds" in z else float("nan")
                print(f"[{name}] encoder states read from {cached}", flush=True)
            else:
                model, tok = load_classifier(args.model, d["classes"], "head", args.pooling, entity)
                model.to("cuda" if torch.cuda.is_available() else "cpu")
                features[name] = {s: encoder_states(model, tok, d[s]["texts"], 64, args.max_length, progress=False)
                                  for s in ("train", "valid", "test")}
                embed_seconds[name] = time.perf_counter() - start
                if cached is not None:
                    cached.parent.mkdir(parents=True, exist_ok=True)
                    np.savez(cached, seconds=embed_seconds[name], **features[name])
                print(f"[{name}] encoded {len(texts)} texts ({pooling} pooling) in {embed_seconds[name]:.1f}s",
                      flush=True)
            done[texts] = name

    jobs, timing = [], []
    for seed in range(0 if args.skip_grid else args.seeds):
        for name in args.datasets:
            for loss in args.losses:
                jobs.append((seed, name, loss, "aggregated"))
            if not args.no_gold:
                jobs.append((seed, name, "ce", "gold"))
    results = []
    for seed, name, loss, labels in jobs:
        if args.time_budget is not None and time.perf_counter() - t0 > args.time_budget:
            print(f"time budget reached: {len(results)}/{len(jobs)} runs done", flush=True)
            break
        d = data[name]
        k = len(d["classes"])
        if labels == "gold":
            targets, weights = np.eye(k)[d["train"]["gold"]], np.ones(len(d["train"]["gold"]))
        else:
            targets, weights = d["train"]["targets"], d["train"]["weights"]
        valid_labels = d["valid"]["gold"] if args.valid == "gold" else d["valid"]["noisy_hard"]
        cfg = TrainConfig(model=args.model, mode=args.mode, pooling=args.pooling, calibration=args.calibration,
                          entity_pooling=args.entity_pooling,
                          loss=loss, epochs=args.epochs, loss_search=args.loss_search,
                          head_epochs=args.head_epochs, batch_size=args.batch_size, max_length=args.max_length,
                          mixed_precision=args.mixed_precision[0],
                          valid_labels=args.valid,
                          **({"select_by": args.select_by} if args.select_by else {}))
        start = time.perf_counter()
        feats = (features[name]["train"], features[name]["valid"]) if args.mode == "head" else None
        clf = train_classifier(d["train"]["texts"], targets, weights, d["classes"], cfg, valid_texts=d["valid"]["texts"],
                        valid_labels=valid_labels, seed=seed, progress=False, features=feats,
                        valid_targets=d["valid"]["targets"])
        if args.mode == "head":
            logits = head_logits(clf, features[name]["test"])
        else:
            logits = predict_logits(clf, d["test"]["texts"], batch_size=128, progress=False)
        gold = d["test"]["gold"]
        raw, cal = scaled_proba(logits, 1.0), scaled_proba(logits, clf.temperature)
        row = {"dataset": name, "loss": loss, "labels": labels, "mode": args.mode, "seed": seed,
               "score": score(name, gold, cal), "metric": "f1" if name == "sms" else "accuracy",
               "ece": expected_calibration_error(gold, raw), "ece_calibrated": expected_calibration_error(gold, cal),
               "ece_floor_calibrated": ece_floor(cal),
               "temperature": clf.temperature, "seconds_per_epoch": clf.seconds_per_epoch,
               "epochs_run": len(clf.history), "best_epoch": clf.best_epoch,
               "select_by": resolve_select_by(cfg.select_by, args.valid), **_chosen_valid(clf),
               "loss_params": clf.loss_params, "search_points": len(clf.search), "search_seconds": clf.search_seconds,
               "search": [{"params": r["params"], "valid_accuracy": r["valid_accuracy"], "valid_nll": r["valid_nll"],
                           "best_epoch": r["best_epoch"]}
                          for r in clf.search],
               "run_seconds": time.perf_counter() - start}
        if args.calibration == "vector":  # the option beside the default: score and ECE after vector scaling
            vec = clf.calibrated_proba(logits)
            row.update(score_vector=score(name, gold, vec), ece_vector=expected_calibration_error(gold, vec),
                       ece_floor_vector=ece_floor(vec))
        if args.mode == "head":
            row["embed_seconds"] = embed_seconds[name]
        results.append(row)
        print(f"[{name}] {labels:10s} {loss:10s} seed {seed}: score {row['score']:.4f} ECE {row['ece']:.4f} -> "
              f"{row['ece_calibrated']:.4f} (T={clf.temperature:.2f}) {row['seconds_per_epoch']:.3f}s/epoch "
              f"epochs {row['epochs_run']}"
              + (f" {clf.loss_params} (search of {len(clf.search)}: {clf.search_seconds:.1f}s)" if clf.search else ""),
              flush=True)
        Path(args.json).write_text(json.dumps({"results": results, "config": vars(args),
                                               "embed_seconds": embed_seconds}, indent=1))
    for name, precision in product(args.full_timing_datasets if args.full_timing else [], args.mixed_precision):
        timing.append(time_full_epoch(name, data[name], args, precision))
        t = timing[-1]
        print(f"[{name}] full fine-tuning ({precision}): {t['seconds_measured']:.1f}s for {t['items_timed']} items -> "
              f"{t['seconds_per_epoch']:.0f}s per epoch of {t['train_items']} items"
              f"{' (extrapolated)' if t['extrapolated'] else ''}", flush=True)
        Path(args.json).write_text(json.dumps({"results": results, "timing": timing, "config": vars(args),
                                               "embed_seconds": embed_seconds}, indent=1))
    print_table(results)


def _chosen_valid(clf) -> dict:
    """The selected epoch's valid accuracy and cross-fitted valid NLL (NaN without valid scoring)."""
    record = clf.history[clf.best_epoch - 1] if clf.best_epoch else {}
    return {"valid_accuracy": record.get("valid_accuracy", float("nan")),
            "valid_nll": record.get("valid_nll", float("nan"))}


def time_full_epoch(name: str, d: dict, args, precision: str = "auto") -> dict:
    """Seconds of one full fine-tuning epoch over the train split, measured on `args.full_timing` random
    covered train items (seed 0, no valid scoring, `train.mixed_precision` = precision) and scaled linearly to
    the whole split; with the peak GPU memory and the test accuracy after that one epoch."""
    import torch

    from pipeline.train.search import train_classifier
    from pipeline.train.trainer import predict_logits

    covered = np.flatnonzero(d["train"]["weights"] > 0)
    n = min(args.full_timing, len(covered))
    pick = np.sort(np.random.default_rng(0).choice(covered, n, replace=False))
    cfg = TrainConfig(model=args.model, mode="full", loss="ce", epochs=1, batch_size=args.batch_size,
                      max_length=args.max_length, mixed_precision=precision)
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    clf = train_classifier([d["train"]["texts"][i] for i in pick], d["train"]["targets"][pick],
                    d["train"]["weights"][pick], d["classes"], cfg, seed=0, progress=False)
    pred = predict_logits(clf, d["test"]["texts"], batch_size=128, progress=False).argmax(axis=1)
    return {"dataset": name, "mode": "full", "loss": "ce", "mixed_precision": precision, "items_timed": int(n),
            "train_items": len(covered), "seconds_measured": clf.seconds_per_epoch,
            "seconds_per_epoch": clf.seconds_per_epoch * len(covered) / n, "extrapolated": n < len(covered),
            "train_loss": clf.history[-1]["train_loss"], "test_accuracy": float(np.mean(pred == d["test"]["gold"])),
            "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None}


def print_table(results: list[dict]) -> None:
    frame = pd.DataFrame(results)
    if frame.empty:
        return
    agg = frame.groupby(["dataset", "mode", "labels", "loss"]).agg(
        score=("score", "mean"), score_std=("score", "std"), ece=("ece", "mean"),
        ece_calibrated=("ece_calibrated", "mean"), ece_floor=("ece_floor_calibrated", "mean"),
        seconds_per_epoch=("seconds_per_epoch", "mean"),
        seeds=("seed", "count")).reset_index()
    print(agg.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    for (name, mode), g in agg[agg["labels"] == "aggregated"].groupby(["dataset", "mode"]):
        ce = g[g["loss"] == "ce"]["score"]
        robust = g[g["loss"].isin(["gce", "sce", "elr", "forward", "coteaching"])]
        if len(ce) and len(robust):
            best = robust.loc[robust["score"].idxmax()]
            print(f"{name} ({mode}): best robust {best['loss']} {best['score']:.4f} vs ce {ce.iloc[0]:.4f} "
                  f"(diff {best['score'] - ce.iloc[0]:+.4f}); max calibrated ECE {g['ece_calibrated'].max():.4f}")


def markdown_table(out: dict) -> str:
    """One row per dataset x labels x loss: mean (± std over seeds) of score, ECE before / after temperature
    scaling, the calibrated ECE floor, seconds per epoch and best epoch."""
    frame = pd.DataFrame(out["results"])
    vector = "score_vector" in frame
    search = "search_seconds" in frame
    extra = " score, vector scaling | ECE, vector scaling | ECE floor, vector |" if vector else ""
    extra += " chosen parameters (seeds) | search s |" if search else ""
    lines = ["| dataset | labels | loss | seeds | score | ECE | ECE calibrated | ECE floor | s / epoch | best epoch |"
             + extra, "|---|---|---|---|---|---|---|---|---|---|" + "---|" * (3 * vector + 2 * search)]
    order = {name: i for i, name in enumerate(LOSSES)}

    def chosen(g: pd.DataFrame) -> str:
        counts = pd.Series([", ".join(f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}"
                                      for k, v in sorted(p.items())) for p in g["loss_params"]]).value_counts()
        return "; ".join(f"{p or 'default'} ×{n}" for p, n in counts.items()) if len(g) else "–"

    def floor(g: pd.DataFrame) -> str:
        return f"{g['ece_floor_calibrated'].mean():.3f}" if "ece_floor_calibrated" in g else "–"

    frame["order"] = frame["loss"].map(order) + (frame["labels"] == "gold") * 10
    for (name, labels, loss), g in frame.sort_values(["dataset", "order"]).groupby(
            ["dataset", "labels", "loss"], sort=False):
        std = f" ± {g['score'].std():.3f}" if len(g) > 1 else ""
        lines.append(f"| {name} | {labels} | {loss} | {len(g)} | {g['score'].mean():.3f}{std} | {g['ece'].mean():.3f} | "
                     f"{g['ece_calibrated'].mean():.3f} | {floor(g)} | "
                     f"{g['seconds_per_epoch'].mean():.2f} | {g['best_epoch'].mean():.1f} |"
                     + (f" {g['score_vector'].mean():.3f} | {g['ece_vector'].mean():.3f} | "
                        f"{g['ece_floor_vector'].mean():.3f} |" if vector else "")
                     + (f" {chosen(g)} | {g['search_seconds'].mean():.1f} |" if search else ""))
    for t in out.get("timing", []):
        lines.append(f"\nfull fine-tuning, {t['dataset']}: {t['seconds_measured']:.1f} s for {t['items_timed']} "
                     f"items -> {t['seconds_per_epoch']:.0f} s per epoch of {t['train_items']} items"
                     f"{' (extrapolated)' if t.get('extrapolated', True) else ''}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
