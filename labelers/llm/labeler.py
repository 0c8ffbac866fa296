"""An LLM labeler = prompt template + verbalizer + backend (+ optional few-shot examples), with a cache.

    labeler = LLMLabeler("gemma_2shot", make_backend("transformers"), classes=["ham", "spam"],
                         template="few_shot", task="Is this YouTube comment spam?",
                         examples=[{"text": "subscribe to me", "label": "spam"}, ...],
                         cache=LLMCache("runs/llm_cache.sqlite"))
    result = labeler.label(items)   # items: DataFrame with a text column

Prompts whose answer is in the cache are not sent to the backend; the others go in chunks of
`chunk_size` prompts, and each finished chunk is written to the cache at once, so a killed run
resumes where it stopped.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from prompts import PromptTemplate

from .backend import Backend
from .cache import CachedAnswer, LLMCache, cache_key
from .calibration import ContextualCalibrator
from .scoring import validate_verbalizers

log = logging.getLogger("labelpipe")


@dataclass
class LabelerResult:
    """votes (N,) int with -1 for abstain; proba (N, K) (zero rows for abstains); raw answers; stats."""

    votes: np.ndarray
    proba: np.ndarray
    raw: list[str]
    abstain: np.ndarray
    stats: dict = field(default_factory=dict)


def build_verbalizers(classes: list[str], words: dict | None) -> list[list[str]]:
    """K lists of label words from {class: word or [words]}; a class left out is verbalized by its name."""
    words = words or {}
    unknown = sorted(set(words) - set(classes))
    if unknown:
        raise ValueError(f"verbalizers: unknown class(es) {', '.join(unknown)}; classes are {', '.join(classes)}")
    out = []
    for c in classes:
        w = words.get(c, [c])
        w = [w] if isinstance(w, str) else list(w)
        if not w:
            raise ValueError(f"verbalizers: class '{c}' has no label words")
        out.append(w)
    try:
        return validate_verbalizers(out)
    except ValueError as err:
        raise ValueError(f"verbalizers: {err}") from None


class LLMLabeler:
    """One labeler: a template and verbalizer run on a backend.

    template: built-in name (zero_shot, few_shot, judge) or .j2 path; task: the instruction text;
    verbalizers: {class: [label words]}; examples: [{"text", "label"}] for few-shot templates;
    shots: how many examples per prompt (None = all); select: "fixed" (the first `shots`) or "similar"
    (per item, the `shots` examples nearest by `encoder` embedding, the nearest last);
    calibrate: "none", or "contextual": divide out the labeler's label-word bias, estimated without gold
    as its mean prediction over the labeled items (contextual calibration; the cache keeps raw answers);
    abstain_below: vote -1 when the top (calibrated) class probability is below this (None = never);
    chunk_size: prompts per backend call and per cache write.
    """

    def __init__(self, name: str, backend: Backend, classes: list[str], template: str = "zero_shot",
                 task: str = "", verbalizers: dict | None = None, examples: list[dict] | None = None,
                 shots: int | None = None, select: str = "fixed", encoder: str = "default",
                 text_column: str = "text", max_chars: int | None = 1000, abstain_below: float | None = None,
                 chunk_size: int = 64, cache: LLMCache | None = None, calibrate: str = "none"):
        self.name = name
        self.backend = backend
        self.classes = list(classes)
        self.template = PromptTemplate(template, max_chars=max_chars)
        self.task = task
        self.verbalizers = build_verbalizers(self.classes, verbalizers)
        self.examples = [self._check_example(i, ex) for i, ex in enumerate(examples or [])]
        if select not in ("fixed", "similar"):
            raise ValueError(f"select must be 'fixed' or 'similar', got '{select}'")
        if shots is not None and shots < 1:
            raise ValueError("shots must be >= 1")
        self.shots, self.select, self.encoder = shots, select, encoder
        if self.template.uses_examples and not self.examples:
            raise ValueError(f"labeler '{name}': template '{template}' shows examples; give examples")
        if self.examples and not self.template.uses_examples:
            raise ValueError(f"labeler '{name}': examples given but template '{template}' does not show them")
        self.text_column = text_column
        if calibrate not in ("none", "contextual"):
            raise ValueError(f"calibrate must be 'none' or 'contextual', got '{calibrate}'")
        self.calibrate = calibrate
        self.abstain_below = abstain_below
        self.chunk_size = chunk_size
        self.cache = cache

    def _check_example(self, i: int, ex: dict) -> dict:
        if not isinstance(ex, dict) or "text" not in ex or "label" not in ex:
            raise ValueError(f"labeler '{self.name}': example {i} needs 'text' and 'label'")
        if ex["label"] not in self.classes:
            raise ValueError(f"labeler '{self.name}': example {i} has label '{ex['label']}', "
                             f"not one of {', '.join(self.classes)}")
        return {"text": str(ex["text"]), "label": ex["label"]}

    @property
    def answers(self) -> list[str]:
        return [w[0] for w in self.verbalizers]

    def _shown(self, ex: dict) -> dict:
        return {"text": ex["text"], "answer": self.verbalizers[self.classes.index(ex["label"])][0]}

    def _examples_per_item(self, texts: list[str]) -> list[list[dict]]:
        if not self.examples:
            return [[] for _ in texts]
        shots = min(self.shots or len(self.examples), len(self.examples))
        if self.select == "fixed":
            fixed = [self._shown(ex) for ex in self.examples[:shots]]
            return [fixed for _ in texts]
        from pipeline.neighbors.embed import embed_texts

        pool = embed_texts([ex["text"] for ex in self.examples], self.encoder, progress=False)
        emb = embed_texts(texts, self.encoder, progress=False)
        sim = emb @ pool.T
        same = np.array([[t == ex["text"] for ex in self.examples] for t in texts])
        sim[same] = -np.inf  # an item never serves as its own example
        top = np.argsort(-sim, axis=1, kind="stable")[:, :shots][:, ::-1]  # the nearest example last
        return [[self._shown(self.examples[j]) for j in row] for row in top]

    def prompts(self, items: pd.DataFrame) -> list[str]:
        """One rendered prompt per item (N strings)."""
        if self.text_column not in items.columns:
            raise ValueError(f"labeler '{self.name}': items have no column '{self.text_column}'")
        records = items.to_dict("records")
        texts = [str(r[self.text_column]) for r in records]
        shots = self._examples_per_item(texts)
        return [self.template.render(text=t, item=r, task=self.task, answers=self.answers, classes=self.classes,
                                     examples=ex) for t, r, ex in zip(texts, records, shots)]

    def label(self, items: pd.DataFrame, progress: bool = False) -> LabelerResult:
        """Label every item: cached answers first, the rest through the backend in chunks."""
        start = time.perf_counter()
        prompts = self.prompts(items)
        identity = self.backend.cache_identity()
        keys = [cache_key(identity, p, self.verbalizers) for p in prompts]
        found = self.cache.get_many(keys) if self.cache is not None else {}
        hits = sum(k in found for k in keys)
        todo, seen = [], set()  # one model call per distinct uncached prompt
        for i, k in enumerate(keys):
            if k not in found and k not in seen:
                seen.add(k)
                todo.append(i)
        model_seconds, tokens, computed = 0.0, 0, 0
        bar = tqdm(total=len(todo), desc=f"llm {self.name}", disable=not progress or not todo, leave=False)
        for c in range(0, len(todo), self.chunk_size):
            idx = todo[c:c + self.chunk_size]
            t0 = time.perf_counter()
            out = self.backend.label([prompts[i] for i in idx], self.verbalizers)
            model_seconds += time.perf_counter() - t0
            tokens += out.prompt_tokens
            computed += int(out.extra.get("computed_tokens", out.prompt_tokens))
            logprob = out.extra.get("logprob")
            answers = {keys[i]: CachedAnswer(out.proba[r], out.raw[r], bool(out.abstain[r]),
                                             _row_tokens(out, r, len(idx)),
                                             None if logprob is None else np.asarray(logprob[r]))
                       for r, i in enumerate(idx)}
            if self.cache is not None:
                self.cache.put_many(answers)
            found.update(answers)
            bar.update(len(idx))
        bar.close()
        k = len(self.classes)
        proba = np.zeros((len(keys), k))
        raw, abstain = [], np.zeros(len(keys), bool)
        for i, key in enumerate(keys):
            a = found[key]
            proba[i], abstain[i] = (a.proba if len(a.proba) == k else 0.0), a.abstain or len(a.proba) != k
            raw.append(a.raw)
        if self.calibrate == "contextual" and (~abstain).any():
            proba = ContextualCalibrator().fit_transform(proba)
        votes = np.where(abstain, -1, proba.argmax(axis=1))
        if self.abstain_below is not None:
            votes[proba.max(axis=1) < self.abstain_below] = -1
        seconds = time.perf_counter() - start
        stats = {"items": len(keys), "cache_hits": hits, "model_items": len(todo),
                 "abstains": int((votes < 0).sum()), "prompt_tokens": tokens, "computed_tokens": computed,
                 "model_seconds": round(model_seconds, 3), "seconds": round(seconds, 3),
                 "items_per_second": round(len(todo) / model_seconds, 2) if model_seconds > 0 else None}
        log.info("llm %s: %d items, %d cache hits, %d through the model (%s items/s, %d prompt tokens), "
                 "%d abstains", self.name, len(keys), hits, len(todo), stats["items_per_second"], tokens,
                 stats["abstains"])
        return LabelerResult(votes.astype(np.int64), proba, raw, abstain, stats)


def _row_tokens(out, r: int, n: int) -> int:
    per_row = out.extra.get("prompt_tokens_per_row")
    if per_row is not None:
        return int(per_row[r])
    return int(round(out.prompt_tokens / max(n, 1)))
