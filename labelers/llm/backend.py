"""The one interface every LLM backend implements (transformers, vllm, openai).

A backend sees finished prompt strings and, per class, its verbalizer (one or more label words).
It returns a probability over the classes for each prompt, the raw answer text, and which prompts
it could not turn into a distribution (abstains). Caching, templating and calibration live outside
the backends (`labelers/llm/cache.py`, `prompts/`, `labelers/llm/calibration.py`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np


@dataclass
class LLMOutput:
    """Result of labeling N prompts over K classes.

    proba: (N, K) float, rows sum to 1; rows of abstains are all zeros.
    raw: N raw answers (generated text, or the best-scoring label word when scoring).
    abstain: (N,) bool, True where no distribution could be obtained (unparseable answer, error).
    prompt_tokens: total prompt tokens processed (for throughput and cost reports).
    completion_tokens: total generated tokens.
    """

    proba: np.ndarray
    raw: list[str]
    abstain: np.ndarray
    prompt_tokens: int = 0
    completion_tokens: int = 0
    extra: dict = field(default_factory=dict)


class Backend(ABC):
    """An LLM that scores or answers prompts. Subclasses set `name` and implement `label`."""

    name: str = "backend"

    @abstractmethod
    def label(self, prompts: list[str], verbalizers: list[list[str]]) -> LLMOutput:
        """Score `prompts` (N strings) against `verbalizers` (K lists of label words) -> LLMOutput."""

    @abstractmethod
    def cache_identity(self) -> dict:
        """What, besides the prompt, determines the answer: backend name, model, decoding parameters.

        Part of the cache key; must never contain secrets (API keys).
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (models, HTTP clients)."""
