"""vLLM backend (GPU, optional extra `labelpipe[gpu]`): offline batch inference with prefix caching.

mode "logprobs" (default): one generated token per item, restricted to the label words' first
tokens (`allowed_token_ids`), class probabilities from the returned log-probabilities. Label words
must start with distinct tokens across classes (single-token words are best); the engine's
`max_logprobs` (default 20) caps how many label tokens can be read back.
mode "choice": the model writes one of the label words under a `structured_outputs` choice
constraint (vLLM >= 0.10.2; the `guided_*` fields were removed in 0.12 and may be ignored silently
by other versions), the text is parsed like any answer; a run whose answers break the constraint
stops with an error instead of producing wrong labels.

Put instructions and examples first and the item last: vLLM's prefix cache (on by default in the
V1 engine) then computes the shared prompt prefix once. `vllm` is imported on first use only.
"""

from __future__ import annotations

import re

import numpy as np

from .backend import Backend, LLMOutput
from .scoring import output_from_answers, validate_verbalizers

MIN_STRUCTURED_OUTPUTS = (0, 10, 2)


def parse_version(text: str) -> tuple[int, int, int]:
    """'0.11.0rc2.dev5+g1234' -> (0, 11, 0)."""
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if not m:
        raise ValueError(f"cannot read the vLLM version '{text}'")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def check_structured_outputs(version: str, has_params_class: bool) -> None:
    """Raise unless this vLLM honours `SamplingParams(structured_outputs=StructuredOutputsParams(choice=...))`."""
    if parse_version(version) < MIN_STRUCTURED_OUTPUTS or not has_params_class:
        raise RuntimeError(f"vLLM {version} has no structured_outputs choice constraint "
                           f"(needs >= {'.'.join(map(str, MIN_STRUCTURED_OUTPUTS))}); refusing to run mode "
                           "'choice' with the old guided_* fields, which newer versions ignore silently. "
                           "Upgrade vLLM or use mode 'logprobs'.")


def label_first_tokens(encode, verbalizers: list[list[str]], word_prefix: str = " ") -> list[list[int]]:
    """Per class, the first token id of each label word (`encode(text) -> ids`, no special tokens).

    Raises when two classes' words start with the same token (their probabilities could not be told apart).
    """
    owner: dict[int, int] = {}
    out = []
    for k, words in enumerate(verbalizers):
        ids = []
        for w in words:
            toks = encode(word_prefix + w)
            if not toks:
                raise ValueError(f"label word '{w}' has no tokens")
            if owner.get(toks[0], k) != k:
                raise ValueError(f"label words of classes {owner[toks[0]]} and {k} start with the same token; "
                                 "use label words that differ in their first token, or mode 'choice'")
            owner[toks[0]] = k
            ids.append(toks[0])
        out.append(sorted(set(ids)))
    return out


def proba_from_top_logprobs(top: list[dict[int, float] | None], class_tokens: list[list[int]]):
    """(proba (N, K), abstain (N,), class log-probs (N, K)) from each item's {token id: logprob}.

    A class's score is the log-sum-exp of its tokens' log-probabilities; tokens missing from an item's
    top log-probabilities count as zero probability; an item with no label token at all abstains.
    """
    n, k = len(top), len(class_tokens)
    scores = np.full((n, k), -np.inf)
    for i, lp in enumerate(top):
        for c, toks in enumerate(class_tokens):
            vals = [lp[t] for t in toks if lp and t in lp and lp[t] is not None]
            if vals:
                scores[i, c] = np.logaddexp.reduce(np.array(vals, float))
    abstain = ~np.isfinite(scores).any(axis=1)
    proba = np.zeros((n, k))
    ok = ~abstain
    if ok.any():
        s = scores[ok]
        s = s - s.max(axis=1, keepdims=True)
        e = np.exp(s)
        proba[ok] = e / e.sum(axis=1, keepdims=True)
    return proba, abstain, scores


def check_choice_honoured(texts: list[str], choices: list[str]) -> None:
    """Raise when an answer produced under a choice constraint is not one of the choices."""
    allowed = {c.strip() for c in choices}
    bad = [t for t in texts if (t or "").strip() not in allowed]
    if bad:
        raise RuntimeError(f"vLLM ignored the choice constraint ({len(bad)} of {len(texts)} answers are not one "
                           f"of {sorted(allowed)}, e.g. {bad[0]!r}); refusing to use these labels")


class VLLMBackend(Backend):
    """Offline vLLM engine. model: HF id or local path; mode: "logprobs" or "choice";
    engine: extra `vllm.LLM(...)` arguments (tensor_parallel_size, gpu_memory_utilization, max_model_len...)."""

    name = "vllm"

    def __init__(self, model: str, mode: str = "logprobs", word_prefix: str = " ", max_logprobs: int = 20,
                 dtype: str = "auto", seed: int = 0, engine: dict | None = None):
        if mode not in ("logprobs", "choice"):
            raise ValueError(f"vllm mode must be 'logprobs' or 'choice', got '{mode}'")
        self.model, self.mode, self.word_prefix = model, mode, word_prefix
        self.max_logprobs, self.dtype, self.seed = max_logprobs, dtype, seed
        self.engine = dict(engine or {})
        self.llm_ = None

    def cache_identity(self) -> dict:
        return {"backend": self.name, "model": self.model, "mode": self.mode, "word_prefix": self.word_prefix,
                "dtype": self.dtype}

    def load(self) -> VLLMBackend:
        if self.llm_ is None:
            try:
                import vllm
            except ImportError:
                raise RuntimeError("the vllm backend needs vLLM on a GPU machine: pip install 'labelpipe[gpu]'") from None
            if self.mode == "choice":
                try:
                    from vllm.sampling_params import StructuredOutputsParams  # noqa: F401
                    has = True
                except ImportError:
                    has = False
                check_structured_outputs(vllm.__version__, has)
            self.llm_ = vllm.LLM(model=self.model, dtype=self.dtype, seed=self.seed, enable_prefix_caching=True,
                                 max_logprobs=self.max_logprobs, **self.engine)
        return self

    def close(self) -> None:
        self.llm_ = None

    def label(self, prompts: list[str], verbalizers: list[list[str]]) -> LLMOutput:
        verbalizers = validate_verbalizers(verbalizers)
        self.load()
        from vllm import SamplingParams

        tok = self.llm_.get_tokenizer()
        if self.mode == "choice":
            from vllm.sampling_params import StructuredOutputsParams

            choices = [w for ws in verbalizers for w in ws]
            params = SamplingParams(temperature=0.0, max_tokens=max(len(tok.encode(c, add_special_tokens=False))
                                                                     for c in choices) + 2,
                                    structured_outputs=StructuredOutputsParams(choice=choices))
            outs = self.llm_.generate(prompts, params, use_tqdm=False)
            texts = [o.outputs[0].text for o in outs]
            check_choice_honoured(texts, choices)
            return output_from_answers(texts, verbalizers, prompt_tokens=_prompt_tokens(outs),
                                       completion_tokens=sum(len(o.outputs[0].token_ids) for o in outs))
        class_tokens = label_first_tokens(lambda s: tok.encode(s, add_special_tokens=False), verbalizers,
                                          self.word_prefix)
        allowed = sorted({t for ts in class_tokens for t in ts})
        if len(allowed) > self.max_logprobs:
            raise ValueError(f"{len(allowed)} label tokens but max_logprobs is {self.max_logprobs}")
        params = SamplingParams(temperature=0.0, max_tokens=1, logprobs=len(allowed), allowed_token_ids=allowed)
        outs = self.llm_.generate(prompts, params, use_tqdm=False)
        top = []
        for o in outs:
            lps = o.outputs[0].logprobs
            top.append({t: lp.logprob for t, lp in lps[0].items()} if lps else None)
        proba, abstain, scores = proba_from_top_logprobs(top, class_tokens)
        names = {tok.encode(self.word_prefix + w, add_special_tokens=False)[0]: w for ws in verbalizers for w in ws}
        raw = [names.get(o.outputs[0].token_ids[0], o.outputs[0].text) if o.outputs[0].token_ids else ""
               for o in outs]
        return LLMOutput(proba, raw, abstain, prompt_tokens=_prompt_tokens(outs), completion_tokens=len(outs),
                         extra={"logprob": scores})


def _prompt_tokens(outs) -> int:
    return int(sum(len(o.prompt_token_ids or []) for o in outs))
