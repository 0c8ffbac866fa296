"""Test helpers for the LLM labeler tests: a real-interface backend that answers in text."""

from __future__ import annotations

import numpy as np

from labelers.llm.backend import Backend, LLMOutput
from labelers.llm.scoring import output_from_answers


class KeywordTextBackend(Backend):
    """Answers "spam" when the prompt's item mentions 'subscribe', "I cannot tell" when it mentions
    '???', else "ham" — a deterministic text-answer backend for labeler/stage tests."""

    name = "keyword-text"

    def __init__(self, model: str = "rules"):
        self.model = model
        self.calls = 0

    def label(self, prompts, verbalizers) -> LLMOutput:
        self.calls += 1
        answers = []
        for p in prompts:
            item = p.rsplit("<text>", 1)[-1]
            answers.append("I cannot tell" if "???" in item else "spam" if "subscribe" in item.lower() else "ham")
        out = output_from_answers(answers, verbalizers, prompt_tokens=sum(len(p.split()) for p in prompts))
        out.extra["logprob"] = np.log(np.clip(out.proba, 1e-9, 1))
        return out

    def cache_identity(self) -> dict:
        return {"backend": self.name, "model": self.model}
