"""`openai` backend: any OpenAI-compatible HTTP endpoint (a vLLM or llama.cpp server, a provider).

Requests go out concurrently (asyncio + httpx, `max_concurrency` workers taking items in order), each with a
timeout and retries with exponential backoff and full jitter on 429, 5xx, timeouts and connection
errors (a `Retry-After` header sets the least wait). Class probabilities come from the top
log-probabilities of the first answer token when the server returns them; otherwise the answer text is
parsed (the first label word, case-insensitive, on word boundaries). An answer that cannot be parsed,
and a request that still fails after all retries, is an abstain: the raw answer or the error is kept,
the run goes on, and finished items are never lost.

The API key is read from the environment (`api_key_env`) at call time, sent only in the
`Authorization` header, and masked in every error, raw answer and log line (servers sometimes echo it).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import numpy as np

from .backend import Backend, LLMOutput
from .scoring import parse_answer

log = logging.getLogger("labelpipe.llm.openai")

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524, 529})
MAX_RETRY_AFTER = 300.0  # seconds: the longest Retry-After honoured
_STRIP = " \t\r\n\"'`*_.,:;!?()[]{}<>-▁Ġ"


class OpenAIBackendError(RuntimeError):
    """A request that failed for good (non-retryable status, or retries exhausted)."""


@dataclass
class _Result:
    proba: np.ndarray | None
    raw: str
    error: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    source: str = ""  # "logprobs" | "text" | ""
    attempts: int = 0
    label_mass: float | None = None  # probability of all label words at the first answer token


def normalize_token(token: str) -> str:
    """Lower-case `token` with surrounding whitespace, quotes and punctuation removed ("" when nothing is left)."""
    return token.strip(_STRIP).lower()


def proba_from_top_logprobs(top: dict[str, float], verbalizers: list[list[str]]) -> np.ndarray | None:
    """(K,) class distribution from one token position's top log-probabilities, or None if no class is there.

    top: {token text: log-probability}. A token maps to class k when its normalized text is a non-empty
    prefix of one of k's label words (so " Sp" counts for "spam") and of no other class's words. The
    probabilities of a class's tokens are summed; a class absent from the list gets the smallest listed
    probability (an upper bound on its mass); the K values are renormalized.
    """
    mass, found = class_mass(top, verbalizers)
    if not found.any():
        return None
    finite = [math.exp(v) for v in top.values() if v is not None and math.isfinite(v)]
    mass[~found] = min(finite)
    return mass / mass.sum()


def class_mass(top: dict[str, float], verbalizers: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """(K,) summed probability of each class's tokens among `top`, and (K,) bool: the class was listed."""
    words = [[normalize_token(w) for w in ws] for ws in verbalizers]
    mass = np.zeros(len(verbalizers))
    found = np.zeros(len(verbalizers), dtype=bool)
    for token, lp in top.items():
        t = normalize_token(token)
        if not t or lp is None or not math.isfinite(lp):
            continue
        hits = [k for k, ws in enumerate(words) if any(w.startswith(t) for w in ws if w)]
        if len(hits) == 1:
            mass[hits[0]] += math.exp(lp)
            found[hits[0]] = True
    return mass, found


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:  # an HTTP date
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class OpenAIBackend(Backend):
    """Label prompts with an OpenAI-compatible endpoint (chat completions by default, or completions).

    base_url: up to and including the version, e.g. "http://127.0.0.1:8000/v1".
    api_key_env: environment variable holding the key (None or unset: no Authorization header).
    logprobs/top_logprobs: ask for the first answer token's top log-probabilities (class distribution);
      when the server sends none, or none of them is a label word, the answer text is parsed.
    max_retries: retries after the first attempt, on 429/5xx/timeouts/connection errors; backoff
      min(backoff_max, backoff_base * 2**attempt) * U(0, 1), at least the server's Retry-After.
    min_label_mass: when the label words' total probability at the first answer token is below this (the
      model meant to say something else), the answer text is parsed instead of the log-probabilities.
    stop_after_failures: after this many requests in a row failed for good, the rest are not sent
      (abstains with an error) — an endpoint that is down does not cost N × retries. None: never.
    price_per_1k_prompt/completion: prices that make the run log and `extra` report an estimated cost.
    """

    name = "openai"

    def __init__(self, base_url: str, model: str, api_key_env: str | None = "OPENAI_API_KEY",
                 endpoint: str = "chat", max_concurrency: int = 8, timeout: float = 60.0,
                 max_retries: int = 5, backoff_base: float = 0.5, backoff_max: float = 30.0,
                 temperature: float = 0.0, max_tokens: int = 8, logprobs: bool = True,
                 top_logprobs: int = 10, stop: list[str] | None = None, system_prompt: str | None = None,
                 seed: int | None = None, min_label_mass: float = 0.0, stop_after_failures: int | None = 50,
                 price_per_1k_prompt: float | None = None, price_per_1k_completion: float | None = None):
        if endpoint not in ("chat", "completions"):
            raise ValueError(f"endpoint must be 'chat' or 'completions', got {endpoint!r}")
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        if max_concurrency < 1 or max_retries < 0 or timeout <= 0 or max_tokens < 1:
            raise ValueError("need max_concurrency >= 1, max_retries >= 0, timeout > 0 and max_tokens >= 1")
        if logprobs and not 1 <= top_logprobs <= 20:
            raise ValueError(f"top_logprobs must be within 1..20, got {top_logprobs}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.endpoint = endpoint
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.logprobs = logprobs
        self.top_logprobs = top_logprobs
        self.stop = stop
        self.system_prompt = system_prompt
        self.seed = seed
        self.min_label_mass = min_label_mass
        self.stop_after_failures = stop_after_failures
        self.price_per_1k_prompt = price_per_1k_prompt
        self.price_per_1k_completion = price_per_1k_completion

    def __repr__(self) -> str:
        return (f"OpenAIBackend(base_url={self.base_url!r}, model={self.model!r}, endpoint={self.endpoint!r}, "
                f"api_key_env={self.api_key_env!r})")

    def cache_identity(self) -> dict:
        """Backend, endpoint, model and decoding parameters (never the key)."""
        return {"backend": self.name, "base_url": self.base_url, "endpoint": self.endpoint, "model": self.model,
                "temperature": self.temperature, "max_tokens": self.max_tokens, "logprobs": self.logprobs,
                "top_logprobs": self.top_logprobs if self.logprobs else None, "stop": self.stop,
                "system_prompt": self.system_prompt, "seed": self.seed, "min_label_mass": self.min_label_mass}

    # ---- public entry points -------------------------------------------------------------------------

    def label(self, prompts: list[str], verbalizers: list[list[str]],
              on_result: Callable[[int, LLMOutput], None] | None = None) -> LLMOutput:
        """Label N prompts over K classes (sync wrapper around `alabel`; safe inside a running loop).

        on_result(i, out) is called as each item finishes, with a one-row LLMOutput (for progress or
        incremental persistence).
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.alabel(prompts, verbalizers, on_result))
        box: dict = {}

        def runner() -> None:
            try:
                box["out"] = asyncio.run(self.alabel(prompts, verbalizers, on_result))
            except BaseException as exc:  # re-raised in the caller's thread
                box["err"] = exc

        thread = threading.Thread(target=runner, name="openai-backend")
        thread.start()
        thread.join()
        if "err" in box:
            raise box["err"]
        return box["out"]

    async def alabel(self, prompts: list[str], verbalizers: list[list[str]],
                     on_result: Callable[[int, LLMOutput], None] | None = None) -> LLMOutput:
        """Async `label`: (N prompts, K verbalizers) -> LLMOutput with N rows; never raises for one bad item."""
        _check_inputs(prompts, verbalizers)
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        secret = _Secret(key)
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        elif self.api_key_env:
            log.debug("no API key in $%s; sending no Authorization header", self.api_key_env)
        n, k = len(prompts), len(verbalizers)
        results: list[_Result | None] = [None] * n
        state = {"consecutive_failures": 0, "stopped": False, "logprobs": self.logprobs, "retries": 0}
        start = time.perf_counter()
        limits = httpx.Limits(max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency)
        async with httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(self.timeout), limits=limits) as client:

            async def one(i: int) -> None:
                if state["stopped"]:
                    res = _Result(None, "", f"not sent: {self.stop_after_failures} requests in a row failed")
                else:
                    res = await self._request(client, prompts[i], verbalizers, secret, state)
                    if res.error is None:
                        state["consecutive_failures"] = 0
                    else:
                        state["consecutive_failures"] += 1
                        if (self.stop_after_failures is not None
                                and state["consecutive_failures"] >= self.stop_after_failures
                                and not state["stopped"]):
                            state["stopped"] = True
                            log.warning("openai: %d requests in a row failed; not sending the rest (last: %s)",
                                        state["consecutive_failures"], res.error)
                results[i] = res
                if on_result is not None:
                    on_result(i, _to_output([res], k))

            todo = iter(range(n))

            async def worker() -> None:  # max_concurrency workers share one queue of indices, in order:
                for i in todo:  # at most that many requests in flight, and O(workers) tasks for any N
                    await one(i)

            await asyncio.gather(*(worker() for _ in range(min(self.max_concurrency, n))))
        out = _to_output(results, k)  # type: ignore[arg-type]
        elapsed = time.perf_counter() - start
        errors = [r.error for r in results]  # type: ignore[union-attr]
        n_err = sum(e is not None for e in errors)
        n_unparsed = int(out.abstain.sum()) - n_err
        cost = self.estimated_cost(out.prompt_tokens, out.completion_tokens)
        out.extra.update({
            "errors": errors, "n_errors": n_err, "n_unparsed": n_unparsed,
            "label_mass": [r.label_mass for r in results],  # type: ignore[union-attr]
            "from_logprobs": sum(r.source == "logprobs" for r in results),  # type: ignore[union-attr]
            "from_text": sum(r.source == "text" for r in results),  # type: ignore[union-attr]
            "retries": state["retries"], "seconds": elapsed,
            "items_per_second": n / elapsed if elapsed > 0 else float("nan"),
            "estimated_cost": cost,
        })
        msg = ("openai %s: %d items in %.1fs (%.2f items/s), %d prompt + %d completion tokens, %d from logprobs, "
               "%d from text, %d unparsed (abstain), %d failed requests (abstain), %d retries")
        args = [self.model, n, elapsed, out.extra["items_per_second"], out.prompt_tokens, out.completion_tokens,
                out.extra["from_logprobs"], out.extra["from_text"], n_unparsed, n_err, state["retries"]]
        if cost is not None:
            msg += ", estimated cost %.4f"
            args.append(cost)
        log.info(msg, *args)
        if n_err:
            first = next(e for e in errors if e is not None)
            log.warning("openai: %d of %d requests failed after retries and are abstains; first error: %s",
                        n_err, n, first)
        return out

    def estimated_cost(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        """Cost from the per-1k-token prices, or None when no price is set."""
        if self.price_per_1k_prompt is None and self.price_per_1k_completion is None:
            return None
        return (prompt_tokens / 1000 * (self.price_per_1k_prompt or 0.0)
                + completion_tokens / 1000 * (self.price_per_1k_completion or 0.0))

    # ---- one request -----------------------------------------------------------------------------------

    def _body(self, prompt: str, logprobs: bool) -> tuple[str, dict]:
        body: dict = {"model": self.model, "temperature": self.temperature, "max_tokens": self.max_tokens}
        if self.stop:
            body["stop"] = self.stop
        if self.seed is not None:
            body["seed"] = self.seed
        if self.endpoint == "chat":
            messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
            body["messages"] = messages + [{"role": "user", "content": prompt}]
            if logprobs:
                body.update(logprobs=True, top_logprobs=self.top_logprobs)
            return f"{self.base_url}/chat/completions", body
        body["prompt"] = prompt
        if logprobs:
            body["logprobs"] = self.top_logprobs
        return f"{self.base_url}/completions", body

    async def _request(self, client: httpx.AsyncClient, prompt: str, verbalizers: list[list[str]],
                       secret: _Secret, state: dict) -> _Result:
        attempt = 0
        while True:
            url, body = self._body(prompt, state["logprobs"])
            wait: float | None = None
            try:
                resp = await client.post(url, json=body)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                error = secret.mask(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            else:
                if resp.status_code == 200:
                    try:
                        return self._parse(resp.json(), verbalizers, secret, attempt + 1)
                    except (ValueError, KeyError, IndexError, TypeError) as exc:
                        error = secret.mask(f"malformed response: {type(exc).__name__}: {exc}")
                        return _Result(None, secret.mask(resp.text[:500]), error, attempts=attempt + 1)
                detail = secret.mask(resp.text[:300].strip())
                error = f"HTTP {resp.status_code} from {url}: {detail}"
                if resp.status_code == 400 and "logprobs" in body and "logprob" in resp.text.lower():
                    if state["logprobs"]:
                        log.warning("openai: the server refuses logprobs (%s); parsing answer text from now on",
                                    detail)
                        state["logprobs"] = False
                    continue
                if resp.status_code not in RETRY_STATUS:
                    return _Result(None, "", error, attempts=attempt + 1)
                wait = _retry_after(resp.headers)
            if attempt >= self.max_retries:
                return _Result(None, "", f"{error} (gave up after {attempt + 1} attempts)", attempts=attempt + 1)
            delay = min(self.backoff_max, self.backoff_base * 2 ** attempt) * random.random()
            if wait is not None:
                delay = max(delay, min(wait, MAX_RETRY_AFTER))
            log.debug("openai: retry %d in %.2fs after %s", attempt + 1, delay, error)
            state["retries"] += 1
            attempt += 1
            await asyncio.sleep(delay)

    def _parse(self, data: dict, verbalizers: list[list[str]], secret: _Secret, attempts: int) -> _Result:
        choice = data["choices"][0]
        usage = data.get("usage") or {}
        pt, ct = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        if self.endpoint == "chat":
            text = (choice.get("message") or {}).get("content") or ""
            positions = _chat_positions(choice.get("logprobs"))
        else:
            text = choice.get("text") or ""
            positions = _completion_positions(choice.get("logprobs"))
        raw = secret.mask(text)
        for token, top in positions:  # the first answer token: the first position that is not blank
            if not normalize_token(token):
                continue
            mass = float(class_mass(top, verbalizers)[0].sum())
            proba = proba_from_top_logprobs(top, verbalizers)
            if proba is not None and mass >= self.min_label_mass:
                return _Result(proba, raw, None, pt, ct, "logprobs", attempts, mass)
            break
        cls = parse_answer(text, verbalizers, anywhere=True)
        if cls < 0:
            return _Result(None, raw, None, pt, ct, "", attempts)
        proba = np.zeros(len(verbalizers))
        proba[cls] = 1.0
        return _Result(proba, raw, None, pt, ct, "text", attempts)


class _Secret:
    """Masks the API key (and its long fragments) in any text that may be logged or stored."""

    def __init__(self, key: str | None):
        self._key = key or ""

    def mask(self, text: str) -> str:
        if not self._key or not text:
            return text
        text = text.replace(self._key, "***")
        if len(self._key) >= 16:  # providers echo keys partly, e.g. "sk-abc...wxyz": mask long fragments too
            for size in (12, 8):
                for i in range(0, len(self._key) - size + 1):
                    frag = self._key[i:i + size]
                    if frag in text:
                        text = text.replace(frag, "***")
        return text

    def __repr__(self) -> str:
        return "_Secret(***)"


def _chat_positions(lp: dict | None) -> list[tuple[str, dict[str, float]]]:
    """[(chosen token, {candidate: logprob})] from a chat completion's `logprobs`."""
    if not lp or not lp.get("content"):
        return []
    out = []
    for pos in lp["content"]:
        top = {c["token"]: c["logprob"] for c in (pos.get("top_logprobs") or []) if c.get("token") is not None}
        if pos.get("token") is not None and pos.get("logprob") is not None:
            top.setdefault(pos["token"], pos["logprob"])
        out.append((pos.get("token") or "", top))
    return out


def _completion_positions(lp: dict | None) -> list[tuple[str, dict[str, float]]]:
    """[(chosen token, {candidate: logprob})] from a (legacy) completion's `logprobs`."""
    if not lp or not lp.get("tokens"):
        return []
    tops = lp.get("top_logprobs") or [None] * len(lp["tokens"])
    lps = lp.get("token_logprobs") or [None] * len(lp["tokens"])
    out = []
    for token, top, tlp in zip(lp["tokens"], tops, lps):
        cand = dict(top or {})
        if tlp is not None:
            cand.setdefault(token, tlp)
        out.append((token, cand))
    return out


def _to_output(results: list[_Result], k: int) -> LLMOutput:
    proba = np.zeros((len(results), k))
    abstain = np.ones(len(results), dtype=bool)
    for i, r in enumerate(results):
        if r.proba is not None:
            proba[i], abstain[i] = r.proba, False
    return LLMOutput(proba=proba, raw=[r.raw for r in results], abstain=abstain,
                     prompt_tokens=sum(r.prompt_tokens for r in results),
                     completion_tokens=sum(r.completion_tokens for r in results),
                     extra={"errors": [r.error for r in results]})


def _check_inputs(prompts: list[str], verbalizers: list[list[str]]) -> None:
    if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
        raise TypeError("prompts must be a list of strings")
    if len(verbalizers) < 2:
        raise ValueError(f"need at least 2 classes, got {len(verbalizers)} verbalizers")
    for k, words in enumerate(verbalizers):
        if isinstance(words, str) or not words or not all(isinstance(w, str) and w.strip() for w in words):
            raise ValueError(f"verbalizer {k} must be a non-empty list of non-empty label words, got {words!r}")
