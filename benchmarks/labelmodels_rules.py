"""AutoLabelModel's gold-seed rules on generated dense votes (development data, no benchmark set's labels).

Usage: python benchmarks/labelmodels_rules.py --json OUT [--sets 40] [--draws 5] [--rules select-balanced_log_loss-r1,...]
       [--independent]

For each generated set (pipeline/labelmodels/synthetic.py, 1500 items) and each draw of 50 gold items (seeds
100..), every rule (combine x scoring x CV repeats) fits `AutoLabelModel` with that gold and is scored on the
other items. Prints the mean accuracy of each rule and its paired wins / losses against the shipped default
(bootstrap, balanced_log_loss, 1 repeat). Further parts of a rule may name the base model
("select-balanced_log_loss-r1-snorkel_mc"; default: auto's own choice), the one-standard-error rule's width
("-se0": pick the best CV score outright; default 1), the CV folds ("-f10"; default 5) and the power of the
bootstrap win shares ("-p0.5"; default: auto's). `--independent`
uses the generated sets without labeler families (synthetic.generate_independent). The WRENCH/prompted
counterpart is `labelmodels_valid.py gold50`.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from pipeline.labelmodels import AutoLabelModel  # noqa: E402
from pipeline.labelmodels.synthetic import generate, generate_independent  # noqa: E402

DEFAULT_RULE = "bootstrap-balanced_log_loss-r1"
RULES = [f"{c}-{s}-r{r}" for c in ("bootstrap", "select", "pool") for s in ("balanced_log_loss", "log_loss")
         for r in (1, 3)]


def rule_params(rule: str) -> dict:
    combine, scoring, repeats, *rest = rule.split("-")
    params = {"combine": combine, "scoring": scoring, "repeats": int(repeats[1:])}
    for part in rest:
        if part.startswith("se"):
            params["min_gain_se"] = float(part[2:])
        elif part.startswith("f") and part[1:].isdigit():
            params["folds"] = int(part[1:])
        elif part.startswith("p") and part[1:].replace(".", "", 1).isdigit():
            params["share_power"] = float(part[1:])
        else:
            params["base"] = part
    return params


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", required=True)
    ap.add_argument("--sets", type=int, default=40)
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--gold", type=int, default=50)
    ap.add_argument("--rules", default=",".join(RULES))
    ap.add_argument("--independent", action="store_true", help="the generated sets without labeler families")
    args = ap.parse_args(argv)
    rules = args.rules.split(",")
    if DEFAULT_RULE not in rules:
        rules.insert(0, DEFAULT_RULE)
    scores: dict[str, list[float]] = {r: [] for r in rules}
    for s in range(args.sets):
        votes, y, k = (generate_independent if args.independent else generate)(s)
        for draw in range(args.draws):
            chosen = np.random.default_rng(100 + draw).choice(len(y), args.gold, replace=False)
            gold = np.full(len(y), -1)
            gold[chosen] = y[chosen]
            rest = np.setdiff1d(np.arange(len(y)), chosen)
            for rule in rules:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model = AutoLabelModel(**rule_params(rule)).fit(votes, k, gold=gold)
                scores[rule].append(float(np.mean(model.predict(votes[rest]) == y[rest])))
        print(f"synthetic/{'independent' if args.independent else 'dense'}-{s}: " + " ".join(f"{r}={np.mean(v[-args.draws:]):.3f}" for r, v in scores.items()),
              flush=True)
    base = np.array(scores[DEFAULT_RULE])
    summary = {}
    for rule, vals in scores.items():
        v = np.array(vals)
        summary[rule] = {"mean": round(float(v.mean()), 4), "wins": int((v > base + 1e-9).sum()),
                         "losses": int((v < base - 1e-9).sum())}
        print(f"{rule:30s} mean {v.mean():.4f}  vs default: {summary[rule]['wins']} better / "
              f"{summary[rule]['losses']} worse of {len(v)}")
    out = {"sets": args.sets, "draws": args.draws, "gold": args.gold, "summary": summary, "scores": scores}
    Path(args.json).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
