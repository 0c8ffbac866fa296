"""Local backend on `transformers`: scores each class's label words by log-probability, no generation.

Per call: the prompts' common token prefix (instructions + few-shot examples) runs once and its
key/value cache is shared by every row (and kept for the next call when it repeats); the item
suffixes run in left-padded batches sorted by length, asking the model for the last position's
logits only; label words of several tokens add one short pass per word over the cached suffix.
"""

from __future__ import annotations

import inspect

import numpy as np

from .backend import Backend, LLMOutput
from .models import DEFAULT_LLM, load_causal_lm
from .scoring import class_distribution, validate_verbalizers


class TransformersBackend(Backend):
    """Label-word scoring with a causal LM.

    model: "default" (Gemma 3 270M GGUF), a Hugging Face id, a local folder or a .gguf path;
    gguf_file: GGUF file name inside `model` (a folder or hub id); batch_size: items per forward pass;
    word_prefix: put before each label word (prompts end with "Answer:", words are scored as " spam");
    max_batch_tokens: a batch holds at most this many padded item tokens (long items go in small batches);
    max_prompt_tokens: longer prompts keep their first and last tokens (the item is cut in the middle);
    threads: torch CPU threads (None = leave as is); share_prefix: False runs full prompts (for tests).
    """

    name = "transformers"

    def __init__(self, model: str = DEFAULT_LLM, gguf_file: str | None = None, batch_size: int = 16,
                 dtype: str = "float32", device: str = "auto", word_prefix: str = " ",
                 max_prompt_tokens: int = 1024, max_batch_tokens: int = 2048, threads: int | None = None, share_prefix: bool = True):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.model = model
        self.gguf_file = gguf_file
        self.batch_size = batch_size
        self.dtype = dtype
        self.device = device
        self.word_prefix = word_prefix
        self.max_prompt_tokens = max_prompt_tokens
        self.max_batch_tokens = max_batch_tokens
        self.threads = threads
        self.share_prefix = share_prefix
        self.lm_ = None
        self.tokenizer_ = None
        self._prefix = None  # (token ids tuple, per-layer (key, value) tensors)

    def cache_identity(self) -> dict:
        return {"backend": self.name, "model": self.model, "gguf_file": self.gguf_file, "dtype": self.dtype,
                "word_prefix": self.word_prefix, "max_prompt_tokens": self.max_prompt_tokens,
                "method": "label-word-logprob/1"}

    def load(self) -> TransformersBackend:
        if self.lm_ is None:
            import torch

            if self.threads:
                torch.set_num_threads(self.threads)
            device = ("cuda" if torch.cuda.is_available() else "cpu") if self.device == "auto" else self.device
            self.lm_, self.tokenizer_ = load_causal_lm(self.model, self.gguf_file, self.dtype, device)
        return self

    def close(self) -> None:
        self.lm_ = self.tokenizer_ = self._prefix = None

    # -- tokenization ---------------------------------------------------------------------------------
    def encode_prompts(self, prompts: list[str]) -> list[list[int]]:
        ids = self.tokenizer_(prompts, add_special_tokens=True)["input_ids"]
        cap = self.max_prompt_tokens
        return [x if len(x) <= cap else x[: cap // 2] + x[len(x) - (cap - cap // 2):] for x in ids]

    def encode_words(self, verbalizers: list[list[str]]) -> list[list[list[int]]]:
        out = []
        for k, words in enumerate(verbalizers):
            row = []
            for w in words:
                ids = self.tokenizer_(self.word_prefix + w, add_special_tokens=False)["input_ids"]
                if not ids:
                    raise ValueError(f"label word '{w}' of class {k} has no tokens")
                row.append(ids)
            out.append(row)
        return out

    # -- scoring --------------------------------------------------------------------------------------
    def label(self, prompts: list[str], verbalizers: list[list[str]]) -> LLMOutput:
        """(N, K) class probabilities from label-word log-probabilities; extra["logprob"] holds the class
        log-probabilities up to a per-row constant (N, K)."""
        verbalizers = validate_verbalizers(verbalizers)
        n, k = len(prompts), len(verbalizers)
        if n == 0:
            return LLMOutput(np.zeros((0, k)), [], np.zeros(0, bool), extra={"logprob": np.zeros((0, k))})
        self.load()
        ids = self.encode_prompts(prompts)
        words = self.encode_words(verbalizers)
        flat = [w for ws in words for w in ws]  # every label word's token ids
        word_lp = np.zeros((n, len(flat)))
        prefix_len = self._common_prefix(ids) if self.share_prefix else 0
        if self._prefix is not None and 0 < len(self._prefix[0]) <= prefix_len \
                and tuple(ids[0][:len(self._prefix[0])]) == self._prefix[0]:
            prefix_len = len(self._prefix[0])  # reuse the previous call's prefix cache
        reused = self._prefix is not None and prefix_len > 0 and tuple(ids[0][:prefix_len]) == self._prefix[0]
        computed = 0 if reused else prefix_len
        for rows in self._batches([len(x) - prefix_len for x in ids]):
            suffixes = [ids[i][prefix_len:] for i in rows]
            word_lp[rows] = self._score_batch(ids[rows[0]][:prefix_len], suffixes, flat)
            computed += sum(len(s) for s in suffixes)
        split = np.cumsum([len(ws) for ws in words])[:-1]
        proba, scores = class_distribution(np.split(word_lp, split, axis=1))
        best_word = np.argmax(word_lp, axis=1)
        names = [w for ws in verbalizers for w in ws]
        raw = [names[j] for j in best_word]
        abstain = ~np.isfinite(proba).all(axis=1)
        proba[abstain] = 0.0
        return LLMOutput(proba, raw, abstain, prompt_tokens=int(sum(len(x) for x in ids)),
                         extra={"logprob": scores, "computed_tokens": int(computed), "prefix_tokens": prefix_len,
                                "prompt_tokens_per_row": [len(x) for x in ids]})

    def _batches(self, lengths: list[int]) -> list[np.ndarray]:
        """Row indices sorted by length, cut into batches of at most batch_size rows, max_batch_tokens
        padded tokens and a quarter of padding."""
        order = np.argsort(lengths, kind="stable")
        batches, current, real = [], [], 0
        for i in order:
            padded = (len(current) + 1) * lengths[i]
            if current and (len(current) >= self.batch_size or padded > self.max_batch_tokens
                            or real + lengths[i] < 0.75 * padded):  # at most a quarter padding
                batches.append(np.array(current))
                current, real = [], 0
            current.append(i)
            real += lengths[i]
        if current:
            batches.append(np.array(current))
        return batches

    def _common_prefix(self, ids: list[list[int]]) -> int:
        """Length of the longest common token prefix, leaving at least one suffix token per prompt."""
        first, limit = ids[0], min(len(x) for x in ids) - 1
        p = 0
        while p < limit and all(x[p] == first[p] for x in ids):
            p += 1
        return p

    def _forward(self, input_ids, cache, **kw):
        """Decoder pass (no LM head) -> last hidden states (B, T, H); `cache` is extended in place."""
        body = getattr(self.lm_, self.lm_.base_model_prefix)
        name = "cache" if "cache" in inspect.signature(body.forward).parameters else "past_key_values"
        return body(input_ids=input_ids, use_cache=True, **{name: cache}, **kw).last_hidden_state

    def _logits(self, hidden, token_ids=None):
        """LM-head logits of `hidden` (..., H) over all tokens, or only over `token_ids` (cheap)."""
        import torch

        weight = self.lm_.get_output_embeddings().weight
        if token_ids is not None:
            weight = weight[torch.as_tensor(token_ids, device=weight.device)]
        logits = (hidden.to(weight.dtype) @ weight.T).float()
        cap = getattr(self.lm_.config, "final_logit_softcapping", None)
        return torch.tanh(logits / cap) * cap if cap else logits

    def _prefix_cache(self, prefix: list[int]):
        """Per-layer (key, value) of the prefix, batch 1; reused while the prefix repeats."""
        import torch
        from transformers import DynamicCache

        key = tuple(prefix)
        if self._prefix is not None and self._prefix[0] == key:
            return self._prefix[1]
        cache = DynamicCache()
        with torch.inference_mode():
            self._forward(torch.tensor([prefix], device=self.lm_.device), cache)
        layers = [(layer.keys, layer.values) for layer in cache.layers]
        self._prefix = (key, layers)
        return layers

    def _score_batch(self, prefix: list[int], suffixes: list[list[int]], words: list[list[int]]) -> np.ndarray:
        """log p(word | prefix + suffix_i) up to a per-row constant, for each row and word -> (B, W).

        The first token of every word is scored on the label words' rows of the LM head only (the
        softmax normalizer is the same for all words of a row, so it cancels between classes); the
        later tokens of multi-token words are normalized over the whole vocabulary.
        """
        import torch
        from transformers import DynamicCache

        dev = self.lm_.device
        b, p = len(suffixes), len(prefix)
        s = max(len(x) for x in suffixes)
        pad = self.tokenizer_.pad_token_id
        input_ids = torch.full((b, s), pad, dtype=torch.long)
        smask = torch.zeros((b, s), dtype=torch.long)
        for i, x in enumerate(suffixes):  # left padding: every row's last token is at the end
            input_ids[i, s - len(x):] = torch.tensor(x)
            smask[i, s - len(x):] = 1
        mask = torch.cat([torch.ones((b, p), dtype=torch.long), smask], dim=1).to(dev)
        positions = (p + smask.cumsum(1) - 1).clamp(min=p).to(dev)
        if p:
            layers = self._prefix_cache(prefix)
            cache = DynamicCache(ddp_cache_data=[(k.expand(b, -1, -1, -1), v.expand(b, -1, -1, -1))
                                                 for k, v in layers])
        else:
            cache = DynamicCache()
        firsts = sorted({w[0] for w in words})
        col = {t: i for i, t in enumerate(firsts)}
        out = np.zeros((b, len(words)))
        with torch.inference_mode():
            hidden = self._forward(input_ids.to(dev), cache, attention_mask=mask, position_ids=positions)
            first = self._logits(hidden[:, -1], firsts).cpu().numpy()
            for j, w in enumerate(words):
                out[:, j] = first[:, col[w[0]]]
            last = positions[:, -1:]
            for j, w in enumerate(words):
                if len(w) == 1:
                    continue
                extra = len(w) - 1
                cont = torch.tensor([w[:-1]] * b, device=dev)
                wmask = torch.cat([mask, torch.ones((b, extra), dtype=torch.long, device=dev)], dim=1)
                wh = self._forward(cont, cache, attention_mask=wmask,
                                   position_ids=last + 1 + torch.arange(extra, device=dev))
                lp = torch.log_softmax(self._logits(wh), dim=-1)
                target = torch.tensor(w[1:], device=dev)
                out[:, j] += lp.gather(2, target.expand(b, -1).unsqueeze(-1)).squeeze(-1).sum(1).cpu().numpy()
                cache.crop(-extra)
        return out
