"""Pure helpers shared by the backends: label-word log-probabilities -> class distribution, text -> class."""

from __future__ import annotations

import re

import numpy as np


def validate_verbalizers(verbalizers: list[list[str]]) -> list[list[str]]:
    """Check K lists of label words: each non-empty, no blank word, no word shared by two classes."""
    if len(verbalizers) < 2:
        raise ValueError(f"verbalizers: need at least 2 classes, got {len(verbalizers)}")
    seen: dict[str, int] = {}
    out = []
    for k, words in enumerate(verbalizers):
        if isinstance(words, str) or not words:
            raise ValueError(f"verbalizer of class {k} is empty: give one or more label words")
        clean = []
        for w in words:
            if not isinstance(w, str) or not w.strip():
                raise ValueError(f"verbalizer of class {k} has a blank label word")
            key = w.strip().lower()
            if key in seen and seen[key] != k:
                raise ValueError(f"label word '{w}' is used by classes {seen[key]} and {k}")
            seen[key] = k
            clean.append(w.strip())
        out.append(clean)
    return out


def class_distribution(word_logprob: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per class, log-sum-exp over its words; normalized over classes.

    word_logprob: K arrays of shape (N, W_k), log p(word | prompt). Returns (proba (N, K), class
    log-probabilities (N, K) before normalization).
    """
    scores = np.stack([_logsumexp(w, axis=1) for w in word_logprob], axis=1)
    proba = np.exp(scores - _logsumexp(scores, axis=1)[:, None])
    return proba, scores


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return np.squeeze(m, axis=axis) + np.log(np.sum(np.exp(a - m), axis=axis))


def parse_answer(text: str | None, verbalizers: list[list[str]], anywhere: bool = False) -> int:
    """Class index of the label word that opens `text` (case-insensitive, whole words), or -1.

    Leading blanks, quotes and punctuation are skipped. With `anywhere`, the first label word found
    anywhere in the text counts ("The answer is spam."). At one position the longest word wins; a word
    that belongs to two classes is ambiguous and skipped.
    """
    text = text or ""
    owners: dict[str, set[int]] = {}
    for k, words in enumerate(verbalizers):
        for w in words:
            owners.setdefault(w.strip().lower(), set()).add(k)
    best: tuple[int, int, int] | None = None  # (start, -length, class)
    for word, classes in owners.items():
        if not word or len(classes) > 1:
            continue
        m = re.search(r"(?<!\w)" + re.escape(word) + r"(?!\w)", text, flags=re.IGNORECASE)
        if m and (best is None or (m.start(), -len(word)) < best[:2]):
            best = (m.start(), -len(word), next(iter(classes)))
    if best is None:
        return -1
    opening = len(re.match(r"[\s\"'`*:\-\[\(]*", text).group())
    return best[2] if anywhere or best[0] == opening else -1


def output_from_answers(texts: list[str], verbalizers: list[list[str]], prompt_tokens: int = 0,
                        completion_tokens: int = 0):
    """LLMOutput from free-text answers: one-hot on the parsed class; an unparseable answer is an
    abstain (zero row) and its raw text is kept."""
    from .backend import LLMOutput

    k = len(verbalizers)
    votes = np.array([parse_answer(t, verbalizers) for t in texts], dtype=np.int64)
    proba = np.zeros((len(texts), k))
    ok = votes >= 0
    proba[np.flatnonzero(ok), votes[ok]] = 1.0
    return LLMOutput(proba, [t if t is not None else "" for t in texts], ~ok, prompt_tokens=prompt_tokens,
                     completion_tokens=completion_tokens)
