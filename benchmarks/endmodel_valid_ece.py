"""Diagnostic for the end-model calibration target, on the valid split only (no test labels).

For each data set and loss (head mode, seed 0, the settings of benchmarks/endmodel.py): the valid ECE at
the temperature fitted by NLL, and the lowest valid ECE any single temperature reaches. Reads the
encoder states cached by `endmodel.py --features DIR`.

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

from endmodel import DATASETS, load_dataset  # noqa: E402

from pipeline.calibration import scaled_proba  # noqa: E402
from pipeline.config import TrainConfig  # noqa: E402
from pipeline.metrics import expected_calibration_error as ece  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("datasets", nargs="+", choices=DATASETS)
    ap.add_argument("--features", required=True, help="folder of <dataset>.npz written by endmodel.py")
    ap.add_argument("--losses", nargs="+", default=["ce", "gce"])
    ap.add_argument("--data-root", default=str(ROOT.parent / "shared" / "datasets"))
    args = ap.parse_args()

    import torch

    from pipeline.train import fine_tune, head_logits

    torch.set_num_threads(1)
    temperatures = np.exp(np.linspace(np.log(0.2), np.log(20), 200))
    for name in args.datasets:
        d = load_dataset(name, Path(args.data_root))
        with np.load(Path(args.features) / f"{name}.npz") as z:
            train_x, valid_x = z["train"], z["valid"]
        y = d["valid"]["gold"]
        for loss in args.losses:
            clf = fine_tune(d["train"]["texts"], d["train"]["targets"], d["train"]["weights"], d["classes"],
                            TrainConfig(mode="head", loss=loss), valid_texts=d["valid"]["texts"], valid_labels=y,
                            seed=0, progress=False, features=(train_x, valid_x))
            logits = head_logits(clf, valid_x)
            eces = [ece(y, scaled_proba(logits, t)) for t in temperatures]
            best = int(np.argmin(eces))
            print(f"{name} {loss}: valid accuracy {np.mean(logits.argmax(1) == y):.3f}; fitted T {clf.temperature:.2f}"
                  f" -> valid ECE {ece(y, scaled_proba(logits, clf.temperature)):.3f}; lowest valid ECE over T "
                  f"{eces[best]:.3f} (T {temperatures[best]:.2f})", flush=True)


if __name__ == "__main__":
    main()
