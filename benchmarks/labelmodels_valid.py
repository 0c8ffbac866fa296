"""Development runs for the label models on the VALID splits only (issue 3): never looks at test labels.

Usage: python benchmarks/labelmodels_valid.py gold0 --json OUT      # gold-free variants: fit train, score valid
       python benchmarks/labelmodels_valid.py estimates --json OUT  # error of the reported labeler accuracies
       python benchmarks/labelmodels_valid.py gold50 --json OUT     # auto's CV rules: 50 valid gold, score the rest
       python benchmarks/labelmodels_valid.py calibration --json OUT  # ECE / NLL of the gold-free posteriors

The seven WRENCH/prompted sets (babe and llmbar have no valid split). gold0: each variant is fitted on the
fit set (train; spouse: all items) and scored on valid (`--variants` may also name the benchmark's anchors,
e.g. anchor:snorkel or anchor:crowdkit_glad). gold50: for each of `--seeds` draws (seeds 100+),
50 valid items get their gold label, every candidate of `auto` is fitted with them and scored on the other
valid items, and its repeated-CV out-of-fold posteriors on the 50 are kept; each selection rule
(scoring x repeats x candidate set) then picks a candidate per draw, and its valid score is reported;
"pool/<scoring>" mixes the C1 candidates with weights fitted on their out-of-fold posteriors (one repeat);
"auto_default" is AutoLabelModel() as shipped (balanced_log_loss/r1/C1, bootstrap model averaging),
"auto:combine=<c>" AutoLabelModel(combine=c) ("select": keep the gold-free base unless the best candidate beats
it by one standard error), "auto:min_gain_se=0" AutoLabelModel(combine="select", min_gain_se=0) (the best CV
score outright, as the rules above), "auto:share_power=<p>" AutoLabelModel(share_power=p) (bootstrap weights =
win shares ** p, renormalized). estimates: each variant fitted as in
gold0; the mean absolute difference between its reported labeler accuracies (`report`) and each labeler's
accuracy measured on the valid items it votes on (labelers with >= 20 votes). calibration: each variant fitted
as in gold0; ECE, NLL and accuracy of its posterior on the valid items some labeler covers. In gold0, estimates
and calibration, `--synthetic N` adds N generated dense sets (pipeline/labelmodels/synthetic.py, fitted and scored
on all items).
Metric as in benchmarks/labelmodels.py (spam F1 on the sms sets, else accuracy).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from labelmodels import ANCHORS, load, score, with_prior_rule  # noqa: E402

from pipeline.labelmodels import AutoLabelModel, DawidSkene, MatrixCompletion, make_label_model  # noqa: E402
from pipeline.labelmodels.auto import COMBINES, cv_score, held_out_posteriors, make_candidate, pool_weights  # noqa: E402
from pipeline.metrics import expected_calibration_error  # noqa: E402

SETS = ["wrench/youtube", "wrench/sms", "wrench/trec", "wrench/semeval", "prompted/youtube", "prompted/sms",
        "prompted/spouse"]
GOLD0 = {
    "snorkel_mc": lambda: MatrixCompletion(),
    "snorkel_mc:prior=em": lambda: MatrixCompletion(prior="em"),
    "snorkel_mc:l2=0.3": lambda: MatrixCompletion(l2=0.3),
    "snorkel_mc:l2=3": lambda: MatrixCompletion(l2=3.0),
    "snorkel_mc:l2=0.001": lambda: MatrixCompletion(l2=1e-3),
    "snorkel_mc:abstain=model": lambda: MatrixCompletion(abstain="model"),
    **{f"snorkel_mc:rel/l2={v:g}": (lambda v=v: MatrixCompletion(penalty="relative", l2=v))
       for v in (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3)},
    "snorkel_mc:abstain=model/prior=em": lambda: MatrixCompletion(abstain="model", prior="em"),
    "snorkel_mc:abstain=ignore": lambda: MatrixCompletion(abstain="ignore"),
    "snorkel_mc:init=majority": lambda: MatrixCompletion(init="majority"),
    "snorkel_mc:T=1": lambda: MatrixCompletion(temperature=1.0),
    "dawid_skene": lambda: DawidSkene(),
    "dawid_skene:abstain=ignore": lambda: DawidSkene(abstain="ignore"),
    "dawid_skene:init=mc": lambda: DawidSkene(init="snorkel_mc"),
    "majority": lambda: make_label_model("majority"),
    "auto": lambda: AutoLabelModel(),
    **{f"auto:max_dependence={v:g}": (lambda v=v: AutoLabelModel(max_dependence=v))
       for v in (0.0, 0.02, 0.03, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2)},
}
CANDIDATES = ("snorkel_mc", "dawid_skene", "majority", "stacker:C=0.1", "best_labeler", "posterior_stacker:C=0.1",
              "stacker:C=1", "posterior_stacker:C=1")
RULES = {  # name: (scoring, repeats, candidates)
    f"{s}/r{r}/{c}": (s, r, {"old": CANDIDATES[:5], "new": CANDIDATES[:6], "newC": CANDIDATES,
                             "C1": CANDIDATES[:3] + ("stacker:C=1", "best_labeler", "posterior_stacker:C=1")}[c])
    for s in ("accuracy", "balanced_accuracy", "log_loss", "balanced_log_loss") for r in (1, 5)
    for c in ("old", "new", "newC", "C1")}


def make(name, gold_free):
    """auto's candidate `name` on the sparse sets' base (snorkel_mc), or a stacker with another C ("stacker:C=1")."""
    if ":C=" in name:
        name, c = name.split(":C=")
        model = make_candidate(name, "snorkel_mc", gold_free)
        model.C = float(c)
        return model
    return make_candidate(name, "snorkel_mc", gold_free)


def fit_variant(bench, name):
    """The gold-free variant `name` of GOLD0 fitted on the bench's fit items."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GOLD0[name]().fit(bench.votes[bench.fit], bench.n_classes)


def gold0(bench, variants) -> dict:
    fit, valid = bench.fit, bench.pool
    out = {}
    for name in variants:
        if name in ANCHORS:  # Snorkel / crowd-kit, as in benchmarks/labelmodels.py
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pred = ANCHORS[name](bench.votes[fit], None, bench.n_classes, bench.votes[valid])
        else:
            model = fit_variant(bench, name)
            pred = with_prior_rule(model.predict(bench.votes[valid]), bench.votes[valid], model.class_prior_)
        out[name] = score(bench.gold[valid], pred, bench.positive)
    return out


def estimate_error(model, votes, gold) -> float:
    """Mean |reported accuracy - accuracy on the items it votes on| over the labelers with >= 20 votes."""
    reported = model.report(votes)["labeler_accuracy"]
    errors = [abs(np.mean(votes[votes[:, j] >= 0, j] == gold[votes[:, j] >= 0]) - reported[j])
              for j in range(votes.shape[1]) if (votes[:, j] >= 0).sum() >= 20 and reported[j] is not None]
    return float(np.mean(errors))


def estimates(bench, variants) -> dict:
    valid = bench.pool  # the valid split; all items where there is none (babe, llmbar, generated sets)
    return {name: estimate_error(fit_variant(bench, name), bench.votes[valid], bench.gold[valid]) for name in variants}


def calibration(bench, variants) -> dict:
    """Each variant's posterior on the covered valid items (all items where there is no valid split): expected
    calibration error (15 bins), negative log likelihood of the gold class, accuracy; and its temperature."""
    valid = bench.pool[(bench.votes[bench.pool] >= 0).any(axis=1)]
    out = {}
    for name in variants:
        model = fit_variant(bench, name)
        proba, y = model.predict_proba(bench.votes[valid]), bench.gold[valid]
        out[name] = {"ece": expected_calibration_error(y, proba),
                     "nll": float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], 1e-6, 1.0)))),
                     "accuracy": float(np.mean(proba.argmax(axis=1) == y)),
                     "temperature": getattr(model, "temperature_", None)}
    return out


SHIPPED_VARIANTS = {  # other settings of the shipped AutoLabelModel (name: parameters); those equal to the
    # defaults are scored as "auto_default" without a second fit
    "auto:min_gain_se=0": {"combine": "select", "min_gain_se": 0.0},
    **{f"auto:combine={c}": {"combine": c} for c in COMBINES},
    **{f"auto:share_power={p:g}": {"share_power": p} for p in (1.0, 0.5, 0.33)},
}
POOL = ("snorkel_mc", "dawid_skene", "majority", "stacker:C=1", "best_labeler", "posterior_stacker:C=1")
POOL_SCORINGS = ("log_loss", "balanced_log_loss")


def gold50(bench, seeds: int, repeats: int = 5) -> dict:
    k = bench.n_classes
    picks: dict[str, list[float]] = {r: [] for r in RULES}
    chosen_names: dict[str, list[str]] = {r: [] for r in RULES}
    cand_scores: dict[str, list[float]] = {c: [] for c in CANDIDATES}
    auto_scores: dict[str, list[float]] = {v: [] for v in ("auto_default", *SHIPPED_VARIANTS)}
    for draw in range(seeds):
        rng = np.random.default_rng(100 + draw)
        chosen = rng.choice(bench.pool, size=50, replace=False)
        fit = np.union1d(bench.fit, chosen)
        rest = np.setdiff1d(bench.pool, chosen)
        votes = bench.votes[fit]
        gold = np.full(len(fit), -1)
        gold[np.searchsorted(fit, chosen)] = bench.gold[chosen]
        labeled = np.flatnonzero(gold >= 0)
        gold_free = make_label_model("snorkel_mc").fit(votes, k)
        split_rng = np.random.default_rng(0)
        splits = [np.array_split(split_rng.permutation(labeled), 5) for _ in range(repeats)]
        final, oof, fproba, fprior = {}, {}, {}, {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for c in CANDIDATES:
                model = make(c, gold_free).fit(votes, k, gold=gold)
                vr = bench.votes[rest]
                final[c] = score(bench.gold[rest], with_prior_rule(model.predict(vr), vr, model.class_prior_),
                                 bench.positive)
                fproba[c], fprior[c] = model.predict_proba(vr), np.asarray(model.class_prior_)
                cand_scores[c].append(final[c])
                oof[c] = held_out_posteriors(partial(make, c, gold_free), votes, k, gold, splits)
            vr = bench.votes[rest]
            default = AutoLabelModel()
            for variant, params in {"auto_default": {}, **SHIPPED_VARIANTS}.items():
                if variant != "auto_default" and all(getattr(default, p) == v for p, v in params.items()):
                    auto_scores[variant].append(auto_scores["auto_default"][-1])  # the default itself: no refit
                    continue
                shipped = AutoLabelModel(**params).fit(votes, k, gold=gold)
                auto_scores[variant].append(score(bench.gold[rest], with_prior_rule(shipped.predict(vr), vr,
                                                                                    shipped.class_prior_),
                                                  bench.positive))
        for rule, (scoring, reps, cands) in RULES.items():
            cv = {c: np.mean([cv_score(p, gold[labeled], scoring, k) for p in oof[c][:reps]]) for c in cands}
            best = max(cands, key=lambda c: (cv[c], -cands.index(c)))
            picks[rule].append(final[best])
            chosen_names[rule].append(best)
        for scoring in POOL_SCORINGS:  # a linear pool of the C1 candidates, weights fitted on their OOF posteriors
            w = pool_weights([oof[c][:1] for c in POOL], gold[labeled], scoring, k)
            proba = sum(wi * fproba[c] for wi, c in zip(w, POOL))
            prior = sum(wi * fprior[c] for wi, c in zip(w, POOL))
            vr = bench.votes[rest]
            picks.setdefault(f"pool/{scoring}", []).append(
                score(bench.gold[rest], with_prior_rule(proba.argmax(axis=1), vr, prior), bench.positive))
            chosen_names.setdefault(f"pool/{scoring}", []).append(" ".join(f"{x:.2f}" for x in w))
    return {"rules": {r: float(np.mean(v)) for r, v in picks.items()},
            **{v: float(np.mean(x)) for v, x in auto_scores.items()},
            "picked": chosen_names, "candidates": {c: float(np.mean(v)) for c, v in cand_scores.items()}}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["gold0", "gold50", "estimates", "calibration"])
    ap.add_argument("--json", required=True)
    ap.add_argument("--datasets", default=",".join(SETS))
    ap.add_argument("--variants", default=",".join(GOLD0))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--synthetic", type=int, default=0,
                    help="gold0, estimates, calibration: also N generated dense sets")
    ap.add_argument("--independent", type=int, default=0,
                    help="gold0, estimates, calibration: also N generated dense sets without labeler families")
    args = ap.parse_args(argv)
    out = {}
    names = [n for n in args.datasets.split(",") if n != "none"]
    if args.mode != "gold50":
        names += [f"synthetic/dense-{i}" for i in range(args.synthetic)]
        names += [f"synthetic/independent-{i}" for i in range(args.independent)]
    for name in names:
        bench = load(name)
        if args.mode == "gold50":
            out[name] = gold50(bench, args.seeds)
        else:
            mode = {"gold0": gold0, "estimates": estimates, "calibration": calibration}[args.mode]
            out[name] = mode(bench, args.variants.split(","))
        print(name, json.dumps(out[name]["candidates"] if args.mode == "gold50" else out[name]), flush=True)
    Path(args.json).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
