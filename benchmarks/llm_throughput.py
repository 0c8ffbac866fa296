"""LLM labeler throughput: our transformers backend vs the naive way, on WRENCH youtube test (250).

Same local model (Gemma 3 270M Q4_K_M GGUF, dequantized to float32), same 2-shot prompt (one ham and
one spam comment, the first of each in the train split), same CPU threads, in one run:
- ours: `TransformersBackend` label-word scoring, the prompt prefix computed once, padded batches;
- naive: one `model.generate` call per item (greedy, 4 new tokens), the answer text parsed into a
  class (an answer that names no class is an abstain and counts as wrong).

    python benchmarks/llm_throughput.py --json benchmarks/out/llm_throughput.json [--n 250] [--threads 1]
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

from labelers.llm.labeler import LLMLabeler  # noqa: E402
from labelers.llm.scoring import parse_answer  # noqa: E402
from labelers.llm.transformers_backend import TransformersBackend  # noqa: E402

DATA = ROOT.parent / "shared" / "datasets" / "wrench" / "youtube"
TASK = "Classify the YouTube comment: spam (advertising, self-promotion, asks to subscribe or visit a link) or ham (a genuine comment about the video)."
CLASSES = ["ham", "spam"]


def load_split(name: str) -> pd.DataFrame:
    raw = json.loads((DATA / f"{name}.json").read_text())
    return pd.DataFrame({"id": list(raw), "text": [v["data"]["text"] for v in raw.values()],
                         "gold": [v["label"] for v in raw.values()]})


def two_shots(train: pd.DataFrame) -> list[dict]:
    ham = train[train.gold == 0].iloc[0]
    spam = train[train.gold == 1].iloc[0]
    return [{"text": ham.text, "label": "ham"}, {"text": spam.text, "label": "spam"}]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", required=True)
    ap.add_argument("--n", type=int, default=250, help="test items (default all 250)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=4)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if not DATA.is_dir():
        sys.exit(f"dataset not found: {DATA}")
    test = load_split("test").iloc[: args.n]
    gold = test.gold.to_numpy()
    backend = TransformersBackend(batch_size=args.batch_size).load()
    labeler = LLMLabeler("gemma_2shot", backend, CLASSES, template="few_shot", task=TASK,
                         examples=two_shots(load_split("train")), cache=None, chunk_size=len(test))
    prompts = labeler.prompts(test)

    backend.label(prompts[:2], labeler.verbalizers)  # warm-up (first-call allocations), not timed
    backend._prefix = None
    t0 = time.perf_counter()
    res = labeler.label(test)
    ours_s = time.perf_counter() - t0
    ours_acc = float((res.votes == gold).mean())

    lm, tok = backend.lm_, backend.tokenizer_
    t0 = time.perf_counter()
    naive_votes, texts = [], []
    with torch.inference_mode():
        for p in prompts:
            enc = tok(p, return_tensors="pt")
            out = lm.generate(**enc, max_new_tokens=args.max_new_tokens, do_sample=False,
                              pad_token_id=tok.pad_token_id)
            text = tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            texts.append(text)
            naive_votes.append(parse_answer(text, labeler.verbalizers))
    naive_s = time.perf_counter() - t0
    naive_votes = np.array(naive_votes)
    naive_acc = float((naive_votes == gold).mean())

    n = len(test)
    results = [
        {"backend": "transformers", "method": "ours", "items_per_second": n / ours_s, "accuracy": ours_acc,
         "seconds": ours_s, "abstains": int((res.votes < 0).sum()),
         "prompt_tokens": res.stats["prompt_tokens"], "computed_tokens": res.stats["computed_tokens"],
         "predicted_spam": float((res.votes == 1).mean())},
        {"backend": "transformers", "method": "naive", "items_per_second": n / naive_s, "accuracy": naive_acc,
         "seconds": naive_s, "abstains": int((naive_votes < 0).sum()),
         "predicted_spam": float((naive_votes == 1).mean()),
         "answers_sample": texts[:5]},
    ]
    out = {"dataset": "wrench/youtube test", "n_items": n, "model": "gemma-3-270m Q4_K_M (float32)",
           "threads": args.threads, "batch_size": args.batch_size, "results": results,
           "speedup": results[0]["items_per_second"] / results[1]["items_per_second"]}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
