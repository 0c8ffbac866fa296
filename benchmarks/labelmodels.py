"""Label-model benchmark (issue 3): our label models against Snorkel, crowd-kit and the best single labeler.

Usage: python benchmarks/labelmodels.py --json OUT [--smoke] [--datasets a,b|none] [--seeds 5] [--synthetic N]

Every method is fitted on the same votes in this process: the train split (all items where there is none),
and scored on the test split (all items for llm/babe and judge/llmbar). Metric accuracy, F1 of the spam
class on the sms sets. Items no labeler covers get the most frequent class of the method's estimated prior.
With a gold seed, 50 items are drawn from the valid split (babe and llmbar: from the items, which are then
not scored), added to the fit set with their gold label, averaged over `--seeds` draws (the anchors that
cannot use gold, snorkel_mv and crowd-kit GLAD, are fitted once, without the seed items). `--smoke` runs
wrench/youtube (400 training items) with one gold-seed draw, in seconds. `--synthetic N` adds N generated
dense sets (pipeline/labelmodels/synthetic.py; all items scored, gold seeds drawn from them, as for babe).
`--groups` gives our snorkel_mc-based models the labeler families the data names (llmbar: the judge model;
the generated sets: their families); off by default, see benchmarks/HISTORY.md (label models, families).
`--methods ours:` runs a subset.
Single-threaded BLAS and torch, so that fit times compare.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from pipeline.labelmodels import DEFAULT_METHOD, FAMILY_AWARE, LABEL_MODELS, make_label_model  # noqa: E402

DATA = ROOT.parent / "shared" / "datasets"
DATASETS = ["wrench/youtube", "wrench/sms", "wrench/trec", "wrench/semeval", "prompted/youtube", "prompted/sms",
            "prompted/spouse", "llm/babe/zero-shot", "llm/babe/2-shot", "llm/babe/8-shot-CoT", "judge/llmbar"]
GOLD_SEED = 50
# anchors that cannot use gold are fitted once per dataset, on the fit set without the seed items (adding 50
# unlabeled items would change next to nothing, and GLAD needs minutes per fit on 2 cores)
GOLD_BLIND = {"anchor:crowdkit_glad", "anchor:snorkel_mv"}


@dataclass
class Bench:
    """votes (N, M) int -1 = abstain; gold (N,); index arrays into the items: fit, score, pool (gold seeds)."""

    name: str
    votes: np.ndarray
    gold: np.ndarray
    n_classes: int
    fit: np.ndarray
    score: np.ndarray
    pool: np.ndarray
    positive: int | None  # class scored by F1 (sms), None = accuracy
    transductive: bool  # babe/llmbar: seed items are removed from the scored items
    groups: np.ndarray | None = None  # (M,) labeler families where the data names them (llmbar: the judge)


def load_wrench(name: str, root: Path = DATA) -> Bench:
    d = root / name
    splits = {s: json.loads((d / f"{s}.json").read_text()) for s in ("train", "valid", "test")
              if (d / f"{s}.json").exists()}
    classes = json.loads((d / "label.json").read_text())
    votes, gold, split = [], [], []
    for s, items in splits.items():
        for rec in items.values():
            votes.append(rec["weak_labels"])
            gold.append(rec["label"])
            split.append(s)
    split = np.array(split)
    fit = np.flatnonzero(split == "train") if "train" in splits else np.arange(len(split))
    positive = next((int(i) for i, c in classes.items() if c == "spam"), None) if name.endswith("sms") else None
    return Bench(name, np.array(votes, dtype=np.int64), np.array(gold, dtype=np.int64), len(classes), fit,
                 np.flatnonzero(split == "test"), np.flatnonzero(split == "valid"), positive, False)


def load_babe(name: str, root: Path = DATA) -> Bench:
    with open(root / f"{name}.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    cols = [c for c in rows[0] if c.endswith("_label")]
    votes = np.array([[int(r[c]) if r[c] in ("0", "1") else -1 for c in cols] for r in rows])
    gold = np.array([int(r["label"]) for r in rows])
    every = np.arange(len(rows))
    return Bench(name, votes, gold, 2, every, every, every, None, True)


def load_llmbar(name: str, root: Path = DATA) -> Bench:
    rows = [json.loads(line) for line in (root / name / "llmbar.jsonl").read_text().splitlines() if line.strip()]
    judges = sorted({j for r in rows for j in r["judges"]})
    votes = np.array([[int(r["judges"][j]) - 1 if r["judges"].get(j) in ("1", "2") else -1 for j in judges]
                      for r in rows])
    gold = np.array([int(r["gold"]) - 1 for r in rows])
    every = np.arange(len(rows))
    families = np.array([j.split("/")[0] for j in judges])  # "<judge>/<strategy>/<order>": one base model
    return Bench(name, votes, gold, 2, every, every, every, None, True, families)


def load_synthetic(name: str) -> Bench:
    """"synthetic/dense-<seed>" (labeler families) or "synthetic/independent-<seed>" (none): generated dense
    votes (pipeline/labelmodels/synthetic.py), scored like babe."""
    from pipeline.labelmodels.synthetic import generate_independent, generate_with_families

    seed = int(name.rsplit("-", 1)[1])
    if name.startswith("synthetic/independent-"):
        votes, gold, k = generate_independent(seed)
        families = np.arange(votes.shape[1])
    else:
        votes, gold, k, families = generate_with_families(seed)
    every = np.arange(len(gold))
    return Bench(name, votes, gold, k, every, every, every, None, True, families)


def load(name: str, root: Path = DATA) -> Bench:
    if name.startswith("synthetic/"):
        return load_synthetic(name)
    if name.startswith("llm/babe"):
        return load_babe(name, root)
    if name.startswith("judge/llmbar"):
        return load_llmbar(name, root)
    return load_wrench(name, root)


def score(y: np.ndarray, pred: np.ndarray, positive: int | None) -> float:
    if positive is None:
        return float(np.mean(y == pred))
    tp = np.sum((pred == positive) & (y == positive))
    denom = np.sum(pred == positive) + np.sum(y == positive)
    return float(2 * tp / denom) if denom else 0.0


def paired_bootstrap(y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, positive: int | None,
                     n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of score(a) - score(b) over `n_boot` resamples of the scored items (y, pred_a,
    pred_b: (N,)); the same resample for both methods, so their shared hits and misses cancel."""
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_boot)
    for b in range(n_boot):
        i = rng.integers(0, len(y), len(y))
        diffs[b] = score(y[i], pred_a[i], positive) - score(y[i], pred_b[i], positive)
    low, high = np.percentile(diffs, [2.5, 97.5])
    return float(low), float(high)


def with_prior_rule(pred: np.ndarray, votes: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Items nobody covers get the most frequent class of the method's estimated prior."""
    return np.where((votes >= 0).any(axis=1), pred, int(np.argmax(prior)))


# --- methods: each takes (votes_fit, gold_fit or None, K, votes_score) and returns predictions on votes_score


def run_ours(name: str, groups=None):
    params = {"groups": groups} if name in FAMILY_AWARE and groups is not None else {}

    def run(vf, gf, k, vs):
        model = make_label_model(name, **params)
        model.fit(vf, k, gold=gf)
        return with_prior_rule(model.predict(vs), vs, model.class_prior_)
    return run


def run_snorkel(vf, gf, k, vs):
    from snorkel.labeling.model import LabelModel

    lm = LabelModel(cardinality=k, verbose=False)
    balance = None  # with gold: the seed's class balance (what Y_dev gives Snorkel), Laplace-smoothed so that a
    if gf is not None:  # class missing from 50 items does not stop it
        balance = ((np.bincount(gf[gf >= 0], minlength=k) + 1.0) / ((gf >= 0).sum() + k)).tolist()
    lm.fit(vf, class_balance=balance, seed=0, progress_bar=False)
    pred = lm.predict_proba(vs).argmax(axis=1)
    return with_prior_rule(pred, vs, np.asarray(lm.p, dtype=float).ravel())


def run_snorkel_mv(vf, gf, k, vs):
    from snorkel.labeling.model import MajorityLabelVoter

    mv = MajorityLabelVoter(cardinality=k)
    prior = np.bincount(vf[vf >= 0], minlength=k)  # the vote shares on the fit set
    pred = mv.predict(vs, tie_break_policy="random")
    return with_prior_rule(pred, vs, prior)


def _long(votes: np.ndarray):
    import pandas as pd

    t, w = np.nonzero(votes >= 0)
    return pd.DataFrame({"task": t, "worker": w, "label": votes[t, w]})


def run_crowdkit_ds(vf, gf, k, vs):
    import pandas as pd
    from crowdkit.aggregation import DawidSkene

    true = None
    if gf is not None:
        has = np.flatnonzero(gf >= 0)
        true = pd.Series(gf[has], index=has)
    ds = DawidSkene(n_iter=100).fit(_long(vf), true_labels=true)
    prior = ds.priors_.reindex(range(k)).fillna(0.0).to_numpy()
    logl = np.tile(np.log(np.clip(prior, 1e-30, None)), (len(vs), 1))
    err = ds.errors_  # index (worker, label), columns true label
    for j in range(vs.shape[1]):
        for lab in range(k):
            rows = np.flatnonzero(vs[:, j] == lab)
            if len(rows) and (j, lab) in err.index:
                p = err.loc[(j, lab)].reindex(range(k)).fillna(0.0).to_numpy(dtype=float)
                logl[rows] += np.log(np.clip(p, 1e-30, None))
    return with_prior_rule(logl.argmax(axis=1), vs, prior)


def run_crowdkit_glad(vf, gf, k, vs):
    from crowdkit.aggregation import GLAD
    from scipy.special import expit

    glad = GLAD(n_iter=100).fit(_long(vf))
    prior = glad.priors_.reindex(range(k)).fillna(0.0).to_numpy(dtype=float)
    beta = float(np.median(glad.betas_.to_numpy()))  # items outside the fit set: the median difficulty
    logl = np.tile(np.log(np.clip(prior, 1e-30, None)), (len(vs), 1))
    for j in range(vs.shape[1]):
        if j not in glad.alphas_.index:
            continue
        p = np.clip(expit(glad.alphas_[j] * np.exp(beta)), 1e-12, 1 - 1e-12)
        for lab in range(k):
            rows = vs[:, j] == lab
            logl[rows] += np.log((1 - p) / (k - 1))
            logl[rows, lab] += np.log(p) - np.log((1 - p) / (k - 1))
    return with_prior_rule(logl.argmax(axis=1), vs, prior)


def best_single(bench: Bench, vf, gf, vs, ys, choose_on_test: bool):
    """The single labeler with the best metric on the gold seed (or, without gold, on the test items: a
    reference, not a method). Its abstains get the most frequent class of all labelers' votes on the fit
    set (of the gold seed labels with a gold seed)."""
    k = bench.n_classes

    def preds(j, v, prior):
        return np.where(v[:, j] >= 0, v[:, j], int(np.argmax(prior)))

    prior = np.bincount(vf[vf >= 0], minlength=k)  # without gold: the vote shares of all labelers
    if gf is not None:
        has = gf >= 0
        prior = np.bincount(gf[has], minlength=k)
        scores = [score(gf[has], preds(j, vf[has], prior), bench.positive) for j in range(vf.shape[1])]
    else:
        scores = [score(ys, preds(j, vs, prior), bench.positive) for j in range(vf.shape[1])]
    j = int(np.argmax(scores))
    return preds(j, vs, prior)


ANCHORS = {"anchor:snorkel": run_snorkel, "anchor:snorkel_mv": run_snorkel_mv,
           "anchor:crowdkit_ds": run_crowdkit_ds, "anchor:crowdkit_glad": run_crowdkit_glad}


def warm_up() -> None:
    """One tiny fit of every method, so that imports and first-call setup are not timed."""
    rng = np.random.default_rng(0)
    votes = rng.integers(-1, 2, (60, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for run in methods().values():
            run(votes, None, 2, votes)


def methods(groups=None) -> dict:
    """Ours get the data's labeler families where it names them (the anchors have no such input)."""
    out = {f"ours:{n}": run_ours(n, groups) for n in LABEL_MODELS if n != DEFAULT_METHOD}
    out["ours:default"] = run_ours(DEFAULT_METHOD, groups)
    out.update(ANCHORS)
    return out


def split_for_seed(bench: Bench, seed: int | None):
    """(fit indices, gold over the fit items or None, score indices) for no seed / a gold-seed draw."""
    if seed is None:
        return bench.fit, None, bench.score
    rng = np.random.default_rng(seed)
    chosen = rng.choice(bench.pool, size=min(GOLD_SEED, len(bench.pool)), replace=False)
    fit = np.union1d(bench.fit, chosen)
    gold = np.full(len(fit), -1)
    gold[np.searchsorted(fit, chosen)] = bench.gold[chosen]
    scored = np.setdiff1d(bench.score, chosen) if bench.transductive else bench.score
    return fit, gold, scored


def evaluate(bench: Bench, seeds: int, log, only: list[str] | None = None) -> tuple[list[dict], list[dict]]:
    """(result rows, comparisons): at gold 0, ours:default against each anchor on the same scored items,
    with the paired-bootstrap 95% interval of the score difference."""
    rows, comparisons = [], []
    metric = "f1" if bench.positive is not None else "accuracy"
    cache: dict = {}
    plan = [(0, [None])] + ([(GOLD_SEED, list(range(seeds)))] if seeds else [])
    for gold_seed, draws in plan:
        acc: dict[str, list[tuple[float, float]]] = {}
        for draw in draws:
            fit, gold, scored = split_for_seed(bench, draw)
            vf, vs, ys = bench.votes[fit], bench.votes[scored], bench.gold[scored]
            preds = {}
            for name, run in methods(bench.groups).items():
                if only and not any(name.startswith(o) for o in only):
                    continue
                blind = name in GOLD_BLIND
                if blind and name in cache:  # no use of gold: the model fitted without the seed items
                    pred_all, secs = cache[name]
                else:
                    start = time.perf_counter()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        pred_all = run(bench.votes[bench.fit] if blind else vf, None if blind else gold,
                                       bench.n_classes, bench.votes)
                    secs = time.perf_counter() - start
                    cache[name] = (pred_all, secs)
                pred = preds[name] = pred_all[scored]
                acc.setdefault(name, []).append((score(ys, pred, bench.positive), secs))
            start = time.perf_counter()
            pred = best_single(bench, vf, gold, vs, ys, choose_on_test=draw is None)
            acc.setdefault("anchor:best_single", []).append((score(ys, pred, bench.positive),
                                                             time.perf_counter() - start))
            if draw is None and "ours:default" in preds:
                comparisons += compare(bench, ys, preds)
        for name, vals in acc.items():
            s, t = np.mean([v[0] for v in vals]), np.mean([v[1] for v in vals])
            rows.append({"dataset": bench.name, "method": name, "gold_seed": gold_seed, "metric": metric,
                         "score": round(float(s), 4), "fit_seconds": round(float(t), 4)})
            log(f"{bench.name:22s} gold={gold_seed:2d} {name:26s} {metric}={s:.4f} fit={t:.3f}s")
    return rows, comparisons


def compare(bench: Bench, ys: np.ndarray, preds: dict) -> list[dict]:
    """ours:default minus each anchor that ran (predictions on the same scored items `ys`)."""
    ours = preds["ours:default"]
    out = []
    for name in (n for n in preds if n in ANCHORS):
        diff = score(ys, ours, bench.positive) - score(ys, preds[name], bench.positive)
        low, high = paired_bootstrap(ys, ours, preds[name], bench.positive)
        out.append({"dataset": bench.name, "gold_seed": 0, "method": "ours:default", "versus": name,
                    "difference": round(diff, 4), "ci95": [round(low, 4), round(high, 4)]})
    return out


def significance(comparisons: list[dict], rows: list[dict]) -> str:
    """Per data set: ours:default minus the best anchor at gold 0, with its paired-bootstrap 95% interval."""
    lines = []
    for d in dict.fromkeys(c["dataset"] for c in comparisons):
        best = max((r for r in rows if r["dataset"] == d and r["gold_seed"] == 0 and r["method"] in ANCHORS),
                   key=lambda r: r["score"], default=None)
        c = next((c for c in comparisons if c["dataset"] == d and best and c["versus"] == best["method"]), None)
        if c:
            lo, hi = c["ci95"]
            verdict = ("same hits" if lo == hi == 0 else "better" if lo > 0 else "worse" if hi < 0
                       else "inside the noise")
            lines.append(f"gold  0 {d:22s} ours:default - {c['versus']:22s} {c['difference']:+.4f} "
                         f"[{lo:+.4f}, {hi:+.4f}] {verdict}")
    return "\n".join(lines)


def table(rows: list[dict]) -> str:
    """Markdown: one row per dataset, one column per method, 'score (gold 0) / score (gold 50)'."""
    names = list(dict.fromkeys(r["method"] for r in rows))
    sets = list(dict.fromkeys(r["dataset"] for r in rows))
    get = {(r["dataset"], r["method"], r["gold_seed"]): r for r in rows}
    lines = ["| dataset | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for gold_seed in (0, GOLD_SEED):
        for d in sets:
            cells = [f"{get[(d, n, gold_seed)]['score']:.3f}" if (d, n, gold_seed) in get else "" for n in names]
            lines.append(f"| {d} (gold {gold_seed}) | " + " | ".join(cells) + " |")
        means = [np.mean([get[(d, n, gold_seed)]["score"] for d in sets if (d, n, gold_seed) in get]) for n in names]
        lines.append(f"| **mean (gold {gold_seed})** | " + " | ".join(f"{m:.3f}" for m in means) + " |")
    return "\n".join(lines)


def versus_best_anchor(rows: list[dict]) -> str:
    """Per gold level and method of ours: on how many data sets it is >= the best anchor (best_single only
    with gold, where it is chosen on the seed), and its mean minus the best anchor's mean."""
    lines = []
    for gold_seed in (0, GOLD_SEED):
        part = [r for r in rows if r["gold_seed"] == gold_seed]
        anchors = {r["method"] for r in part if r["method"].startswith("anchor:")}
        if gold_seed == 0:
            anchors.discard("anchor:best_single")
        sets = list(dict.fromkeys(r["dataset"] for r in part))
        get = {(r["dataset"], r["method"]): r["score"] for r in part}
        if not anchors or not sets:
            continue
        best_mean = max(np.mean([get[(d, a)] for d in sets]) for a in anchors)
        for name in dict.fromkeys(r["method"] for r in part if r["method"].startswith("ours:")):
            wins = sum(get[(d, name)] >= max(get[(d, a)] for a in anchors) for d in sets)
            mean = np.mean([get[(d, name)] for d in sets])
            lines.append(f"gold {gold_seed:2d} {name:26s} >= best anchor on {wins}/{len(sets)}, "
                         f"mean {mean:.4f} ({100 * (mean - best_mean):+.1f} points vs the best anchor's mean)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", required=True, help="output file")
    ap.add_argument("--smoke", action="store_true", help="wrench/youtube, one gold-seed draw")
    ap.add_argument("--datasets", help="comma-separated subset of " + ",".join(DATASETS))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--synthetic", type=int, default=0, metavar="N",
                    help="also (or, with --datasets none, only) N generated dense sets synthetic/dense-0..N-1")
    ap.add_argument("--independent", type=int, default=0, metavar="N",
                    help="also N generated dense sets without labeler families, synthetic/independent-0..N-1")
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--groups", action="store_true",
                    help="give ours the labeler families the data names (llmbar: the judge; generated sets)")
    ap.add_argument("--methods", help="comma-separated name prefixes to run (e.g. ours:,anchor:snorkel)")
    ap.add_argument("--merge", nargs="+", help="combine the results of earlier runs (JSON files) into --json")
    args = ap.parse_args(argv)
    if args.merge:
        parts = [json.loads(Path(p).read_text()) for p in args.merge]
        out = {**parts[0], "results": [r for p in parts for r in p["results"]],
               "comparisons": [c for p in parts for c in p.get("comparisons", [])]}
        Path(args.json).write_text(json.dumps(out, indent=1))
        report(out)
        return out
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    logging.getLogger("snorkel").setLevel(logging.ERROR)
    warm_up()
    root = Path(args.data)
    names = ["wrench/youtube"] if args.smoke else (args.datasets.split(",") if args.datasets else DATASETS)
    names = [n for n in names if n != "none"] + [f"synthetic/dense-{i}" for i in range(args.synthetic)]
    names += [f"synthetic/independent-{i}" for i in range(args.independent)]
    seeds = 1 if args.smoke else args.seeds
    only = args.methods.split(",") if args.methods else None
    rows, comparisons = [], []
    for name in names:
        bench = load(name, root)
        if args.smoke:  # a 400-item fit set keeps the smoke run to seconds
            bench.fit = bench.fit[:400]
        if not args.groups:
            bench.groups = None
        found, compared = evaluate(bench, seeds, lambda s: print(s, flush=True), only)
        rows, comparisons = rows + found, comparisons + compared
    out = {"results": rows, "comparisons": comparisons, "default_method": DEFAULT_METHOD, "seeds": seeds,
           "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores".strip()}
    Path(args.json).write_text(json.dumps(out, indent=1))
    report(out)
    return out


def report(out: dict) -> None:
    print(table(out["results"]))
    print(versus_best_anchor(out["results"]))
    print(significance(out["comparisons"], out["results"]))


if __name__ == "__main__":
    main()
