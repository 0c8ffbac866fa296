"""Diagnostic for the end-model calibration target, on the valid split only (no test labels).

For each data set and loss (head mode, the settings of benchmarks/endmodel.py, seeds 0..S-1), on the
gold valid labels:
- in-sample: the valid ECE at the temperature fitted on all of valid, the lowest valid ECE any single
  temperature reaches, and the ECE floor (what a perfectly calibrated model with these probabilities
  scores on a set of this size);
- cross-validated (10 folds, stratified): each fold's probabilities from a calibrator fitted on the
  other nine; the ECE and NLL of the pooled out-of-fold probabilities, for no calibration, temperature
  scaling and vector scaling (`pipeline.calibration.fit_vector_scaling`: a scale and a bias per class;
  Guo et al. 2017). This is the honest estimate of what each calibrator does on unseen items of the
  valid distribution.

Reads the encoder states cached by `endmodel.py --features DIR`.

    python benchmarks/endmodel_valid_ece.py --features runs/feat trec youtube semeval
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from endmodel import DATASETS, ece_floor, features_path, load_dataset  # noqa: E402

from pipeline.calibration import fit_temperature, fit_vector_scaling, nll, scaled_proba  # noqa: E402
from pipeline.config import TrainConfig  # noqa: E402
from pipeline.metrics import expected_calibration_error as ece  # noqa: E402


def cross_validated(logits: np.ndarray, y: np.ndarray, folds: int = 10, seed: int = 0) -> dict[str, np.ndarray]:
    """Out-of-fold probabilities (N, K) of each calibrator, folds stratified by class."""
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(y), int)
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        fold[idx] = (np.arange(len(idx)) + rng.integers(folds)) % folds
    out = {name: np.zeros(logits.shape) for name in ("none", "temperature", "vector")}
    for f in range(folds):
        fit, held = fold != f, fold == f
        out["none"][held] = scaled_proba(logits[held], 1.0)
        out["temperature"][held] = scaled_proba(logits[held], fit_temperature(logits[fit], y[fit]))
        w, b = fit_vector_scaling(logits[fit], y[fit])
        out["vector"][held] = scaled_proba(logits[held] * w + b, 1.0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("datasets", nargs="+", choices=DATASETS)
    ap.add_argument("--features", required=True, help="folder of <dataset>-<pooling>-<max length>.npz (endmodel.py)")
    ap.add_argument("--pooling", default="mean")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--losses", nargs="+", default=["ce", "soft_ce", "gce", "sce", "elr", "coteaching"])
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--data-root", default=str(ROOT.parent / "shared" / "datasets"))
    args = ap.parse_args()

    import torch

    from pipeline.train.search import train_classifier
    from pipeline.train.trainer import head_logits

    torch.set_num_threads(1)
    temperatures = np.exp(np.linspace(np.log(0.2), np.log(20), 200))
    for name in args.datasets:
        d = load_dataset(name, Path(args.data_root))
        with np.load(features_path(args.features, d, args.pooling, args.max_length)) as z:  # endmodel.py's cache
            train_x, valid_x = z["train"], z["valid"]
        y = d["valid"]["gold"]
        for loss in args.losses:
            for seed in range(args.seeds):
                clf = train_classifier(d["train"]["texts"], d["train"]["targets"], d["train"]["weights"], d["classes"],
                                TrainConfig(mode="head", pooling=args.pooling, loss=loss, entity_pooling="off"),
                                valid_texts=d["valid"]["texts"], valid_labels=y, seed=seed, progress=False,
                                features=(train_x, valid_x))
                logits = head_logits(clf, valid_x)
                fitted = scaled_proba(logits, clf.temperature)
                lowest = min(ece(y, scaled_proba(logits, t)) for t in temperatures)
                cv = cross_validated(logits, y)
                cv_text = "  ".join(f"{k} acc {np.mean(p.argmax(1) == y):.3f} ECE {ece(y, p):.3f} "
                                    f"NLL {nll(np.log(p + 1e-12), y):.3f}" for k, p in cv.items())
                print(f"{name} {loss} seed {seed}: n {len(y)} acc {np.mean(logits.argmax(1) == y):.3f} "
                      f"T {clf.temperature:.2f} | in-sample ECE {ece(y, fitted):.3f} lowest {lowest:.3f} floor "
                      f"{ece_floor(fitted):.3f} | 10-fold CV: {cv_text}", flush=True)


if __name__ == "__main__":
    main()
