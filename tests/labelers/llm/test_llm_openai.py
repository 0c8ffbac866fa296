"""The `openai` backend against small real HTTP servers run in the test process (no mocks): logprobs and
text answers, retries on 429/5xx with Retry-After, timeouts, a server that always fails, a server stopped
mid-run, and the API key never leaking into errors, raw answers, reprs, identities or logs."""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import numpy as np
import pytest

from labelers.llm.openai_backend import (
    OpenAIBackend,
    _retry_after,
    normalize_token,
    proba_from_top_logprobs,
)
from labelers.llm.scoring import parse_answer

KEY = "sk-SENTINEL-7f3a9c1e5b2d4f60a8e1"
VERB = [["ham"], ["spam"]]


def chat_reply(text: str, top: dict[str, float] | None, pt: int = 10, ct: int = 1) -> dict:
    choice: dict = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
    if top is not None:
        tok = max(top, key=top.get)
        choice["logprobs"] = {"content": [{"token": tok, "logprob": top[tok],
                                           "top_logprobs": [{"token": t, "logprob": v} for t, v in top.items()]}]}
    return {"choices": [choice], "usage": {"prompt_tokens": pt, "completion_tokens": ct}}


def spam_top(prompt: str) -> dict[str, float]:
    """Logprobs that say spam (p=0.8 of the two) when the prompt has 'free', ham (0.8) otherwise."""
    hi, lo = math.log(0.72), math.log(0.18)
    if "free" in prompt:
        return {" spam": hi, " ham": lo, " the": math.log(0.05)}
    return {" ham": hi, " spam": lo, " the": math.log(0.05)}


class Server:
    """A ThreadingHTTPServer on 127.0.0.1 whose answers come from `respond(n, path, body, headers)`.

    respond returns (status, headers dict, JSON-able body or str); n counts requests from 0.
    """

    def __init__(self, respond, delay: float = 0.0):
        self.respond, self.delay = respond, delay
        self.requests: list[tuple[str, dict, dict]] = []
        self.lock = threading.Lock()
        self.inflight = self.max_inflight = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    n = len(outer.requests)
                    outer.requests.append((self.path, body, dict(self.headers)))
                    outer.inflight += 1
                    outer.max_inflight = max(outer.max_inflight, outer.inflight)
                try:
                    if outer.delay:
                        time.sleep(outer.delay)
                    status, headers, payload = outer.respond(n, self.path, body, dict(self.headers))
                    data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with outer.lock:
                        outer.inflight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    servers = []

    def _serve(respond, delay=0.0):
        servers.append(Server(respond, delay))
        return servers[-1]

    yield _serve
    for s in servers:
        s.stop()


def prompt_of(body: dict) -> str:
    return body["messages"][-1]["content"] if "messages" in body else body["prompt"]


def fast(url: str, **kw) -> OpenAIBackend:
    kw.setdefault("backoff_base", 0.01)
    kw.setdefault("timeout", 5)
    return OpenAIBackend(url, "test-model", **kw)


# ---- parsing (pure functions) ------------------------------------------------------------------------------


def test_parse_answer_first_word_whole_words_case_insensitive():
    assert parse_answer("The answer is SPAM.", VERB, anywhere=True) == 1
    assert parse_answer("ham, not spam", VERB, anywhere=True) == 0
    assert parse_answer("hamster spammer", VERB, anywhere=True) == -1
    assert parse_answer("I cannot tell", VERB, anywhere=True) == -1
    # the longest word wins at one position; a word of two classes is ambiguous and skipped
    assert parse_answer("very positive", [["positive"], ["very positive"]], anywhere=True) == 1
    assert parse_answer("yes ok", [["yes", "ok"], ["yes", "no"]], anywhere=True) == 0


def test_proba_from_top_logprobs_maps_prefix_tokens_and_renormalizes():
    top = {" Sp": math.log(0.5), "ham": math.log(0.2), " H": math.log(0.1), "\n": math.log(0.1)}
    p = proba_from_top_logprobs(top, VERB)
    np.testing.assert_allclose(p, [0.3 / 0.8, 0.5 / 0.8])
    # a class missing from the list gets the smallest listed probability
    p = proba_from_top_logprobs({" spam": math.log(0.9), " the": math.log(0.01)}, VERB)
    np.testing.assert_allclose(p, [0.01 / 0.91, 0.9 / 0.91])
    assert proba_from_top_logprobs({" the": -0.1, "a": -2.0}, VERB) is None
    assert normalize_token(" **Spam:**") == "spam"


def test_retry_after_in_seconds_or_http_date():
    assert _retry_after(httpx.Headers({"Retry-After": "3"})) == 3.0
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < _retry_after(httpx.Headers({"Retry-After": date})) <= 30
    assert _retry_after(httpx.Headers({"Retry-After": "soon"})) is None and _retry_after(httpx.Headers()) is None


# ---- normal labeling --------------------------------------------------------------------------------------


def test_chat_logprobs_give_class_probabilities_and_cost(serve):
    srv = serve(lambda n, path, body, h: (200, {}, chat_reply(" spam" if "free" in prompt_of(body) else " ham",
                                                               spam_top(prompt_of(body)))))
    prompts = [f"comment {i}: {'free iphone' if i % 3 == 0 else 'nice song'}" for i in range(12)]
    be = fast(srv.url, max_concurrency=4, price_per_1k_prompt=0.5, price_per_1k_completion=1.5)
    out = be.label(prompts, VERB)
    want = np.array([[0.2, 0.8] if "free" in p else [0.8, 0.2] for p in prompts])
    np.testing.assert_allclose(out.proba, want, atol=1e-9)
    assert not out.abstain.any() and out.extra["from_logprobs"] == 12 and out.extra["n_errors"] == 0
    assert out.raw[0] == " spam" and out.raw[1] == " ham"
    assert out.extra["label_mass"][0] == pytest.approx(0.9)
    assert (out.prompt_tokens, out.completion_tokens) == (120, 12)
    assert out.extra["estimated_cost"] == pytest.approx(0.12 * 0.5 + 0.012 * 1.5)
    path, body, _ = srv.requests[0]
    assert path == "/v1/chat/completions" and body["logprobs"] is True and body["top_logprobs"] == 10
    assert body["temperature"] == 0 and body["model"] == "test-model"


def test_concurrency_limit_is_respected(serve):
    srv = serve(lambda n, p, body, h: (200, {}, chat_reply(" ham", None)), delay=0.25)
    out = fast(srv.url, max_concurrency=3).label([f"x{i}" for i in range(9)], VERB)
    assert 2 <= srv.max_inflight <= 3 and out.extra["from_text"] == 9


def test_completions_endpoint_legacy_logprobs(serve):
    def respond(n, path, body, h):
        top = spam_top(body["prompt"])
        tok = max(top, key=top.get)
        lp = {"tokens": ["\n", tok], "token_logprobs": [-0.01, top[tok]],
              "top_logprobs": [{"\n": -0.01}, top], "text_offset": [0, 1]}
        return 200, {}, {"choices": [{"text": "\n" + tok, "logprobs": lp}],
                         "usage": {"prompt_tokens": 7, "completion_tokens": 2}}

    srv = serve(respond)
    out = fast(srv.url, endpoint="completions", top_logprobs=5, stop=["\n\n"]).label(["free stuff", "lovely"], VERB)
    np.testing.assert_allclose(out.proba, [[0.2, 0.8], [0.8, 0.2]])
    path, body, _ = srv.requests[0]
    assert path == "/v1/completions" and body["logprobs"] == 5 and body["stop"] == ["\n\n"]


def test_text_answers_are_parsed_and_unparseable_ones_abstain_with_raw_kept(serve):
    answers = {"a": "Label: SPAM", "b": "ham.", "c": "I am not sure what this is"}
    srv = serve(lambda n, p, body, h: (200, {}, chat_reply(answers[prompt_of(body)], None)))
    out = fast(srv.url, logprobs=False).label(["a", "b", "c"], VERB)
    np.testing.assert_array_equal(out.proba, [[0, 1], [1, 0], [0, 0]])
    np.testing.assert_array_equal(out.abstain, [False, False, True])
    assert out.raw[2] == "I am not sure what this is" and out.extra["errors"] == [None] * 3
    assert out.extra["n_unparsed"] == 1 and out.extra["from_text"] == 2
    assert "logprobs" not in srv.requests[0][1]


def test_low_label_mass_falls_back_to_the_answer_text(serve):
    top = {"Sure": math.log(0.9), " spam": math.log(0.02), " ham": math.log(0.01)}
    srv = serve(lambda n, p, body, h: (200, {}, chat_reply("Sure, it is ham", top)))
    out = fast(srv.url).label(["a"], VERB)  # default: the label words' distribution, however small
    np.testing.assert_allclose(out.proba, [[1 / 3, 2 / 3]])
    assert out.extra["label_mass"] == [pytest.approx(0.03)]
    out = fast(srv.url, min_label_mass=0.5).label(["a"], VERB)
    assert out.proba.tolist() == [[1.0, 0.0]] and out.extra["from_text"] == 1


def test_server_refusing_logprobs_falls_back_to_text(serve):
    def respond(n, path, body, h):
        if body.get("logprobs"):
            return 400, {}, {"error": {"message": "logprobs is not supported for this model"}}
        return 200, {}, chat_reply("spam", None)

    out = fast(serve(respond).url).label(["a", "b"], VERB)
    np.testing.assert_array_equal(out.proba, [[0, 1], [0, 1]])


def test_label_works_inside_a_running_event_loop(serve):
    srv = serve(lambda n, p, body, h: (200, {}, chat_reply("ham", None)))

    async def main():
        return fast(srv.url).label(["a"], VERB)

    assert asyncio.run(main()).proba.tolist() == [[1.0, 0.0]]


# ---- errors, retries, partial results --------------------------------------------------------------------


def test_retries_on_429_and_500_honour_retry_after_then_succeed(serve):
    seen: dict[str, int] = {}
    lock = threading.Lock()

    def respond(n, path, body, h):
        p = prompt_of(body)
        with lock:
            seen[p] = seen.get(p, 0) + 1
            k = seen[p]
        if k == 1:
            return 429, {"Retry-After": "1" if p == "a" else "0"}, {"error": {"message": "rate limited"}}
        if k == 2:
            return 500, {}, {"error": {"message": "overloaded"}}
        return 200, {}, chat_reply(" spam", spam_top("free"))

    srv = serve(respond)
    t0 = time.perf_counter()
    out = fast(srv.url, max_retries=3).label(["a", "b", "c"], VERB)
    assert time.perf_counter() - t0 >= 1.0  # Retry-After: 1 was waited for
    assert not out.abstain.any() and out.extra["retries"] == 6 and len(srv.requests) == 9
    np.testing.assert_allclose(out.proba, [[0.2, 0.8]] * 3)


def test_always_failing_server_gives_abstains_with_errors_and_never_leaks_the_key(serve, monkeypatch, caplog):
    monkeypatch.setenv("SENTINEL_KEY", KEY)

    def respond(n, path, body, h):  # a careless server that echoes the credentials back
        auth = h.get("Authorization", "")
        if prompt_of(body) == "unauthorized":
            return 401, {}, {"error": {"message": f"Incorrect API key provided: {auth[7:]}"}}
        return 503, {}, {"error": {"message": f"backend down (request had {auth})"}}

    srv = serve(respond)
    be = fast(srv.url, api_key_env="SENTINEL_KEY", max_retries=2, stop_after_failures=None,
              price_per_1k_prompt=1.0)
    caplog.set_level(logging.DEBUG)
    out = be.label(["a", "b", "unauthorized"], VERB)
    assert srv.requests[0][2]["Authorization"] == f"Bearer {KEY}"  # the key was sent
    assert out.abstain.all() and out.extra["n_errors"] == 3 and out.extra["n_unparsed"] == 0
    errors = out.extra["errors"]
    assert "HTTP 503" in errors[0] and "gave up after 3 attempts" in errors[0]
    assert "HTTP 401" in errors[2] and "gave up" not in errors[2]  # 401 is not retried
    assert len(srv.requests) == 3 + 3 + 1
    assert "3 of 3 requests failed" in caplog.text
    everything = "\n".join([json.dumps(out.extra, default=str), repr(out.raw), repr(be), repr(vars(be)),
                            json.dumps(be.cache_identity()), caplog.text,
                            "\n".join(r.getMessage() for r in caplog.records)])
    assert KEY not in everything and KEY[3:15] not in everything
    assert "***" in errors[0] and "***" in errors[2]


def test_timeouts_and_a_closed_port_abstain_and_stop_after_repeated_failures(serve):
    srv = serve(lambda n, p, body, h: (200, {}, chat_reply("ham", None)), delay=1.5)
    out = fast(srv.url, timeout=0.2, max_retries=1, max_concurrency=2).label(["a", "b"], VERB)
    assert out.abstain.all() and all("ReadTimeout" in e for e in out.extra["errors"])

    srv2 = serve(lambda *a: (200, {}, {}))
    closed = srv2.url
    srv2.stop()
    be = fast(closed, max_retries=1, max_concurrency=1, stop_after_failures=2)
    out = be.label([f"p{i}" for i in range(5)], VERB)
    errs = out.extra["errors"]
    assert out.abstain.all() and "ConnectError" in errs[0] and "ConnectError" in errs[1]
    assert all(e.startswith("not sent") for e in errs[2:])


def test_server_stopped_mid_run_keeps_finished_items(serve):
    srv = serve(lambda n, p, body, h: (200, {}, chat_reply(" spam", spam_top(prompt_of(body)))), delay=0.02)
    done = []

    def on_result(i, row):
        done.append(i)
        if len(done) == 4:  # stop the server after 4 finished items
            srv.stop()

    prompts = [f"free {i}" if i % 2 else f"song {i}" for i in range(10)]
    out = fast(srv.url, max_concurrency=1, max_retries=1).label(prompts, VERB, on_result=on_result)
    assert len(out.raw) == 10 and sorted(done) == list(range(10))
    np.testing.assert_array_equal(out.abstain, [False] * 4 + [True] * 6)
    np.testing.assert_allclose(out.proba[:4], [[0.8, 0.2], [0.2, 0.8]] * 2)
    assert out.extra["n_errors"] == 6 and out.proba[4:].sum() == 0


def test_bad_arguments_get_clear_errors():
    with pytest.raises(ValueError, match="endpoint"):
        OpenAIBackend("http://127.0.0.1:1/v1", "m", endpoint="embeddings")
    with pytest.raises(ValueError, match="base_url"):
        OpenAIBackend("127.0.0.1:1/v1", "m")
    with pytest.raises(ValueError, match="top_logprobs"):
        OpenAIBackend("http://127.0.0.1:1/v1", "m", top_logprobs=50)
    be = OpenAIBackend("http://127.0.0.1:1/v1", "m")
    with pytest.raises(ValueError, match="verbalizer 1"):
        be.label(["x"], [["ham"], []])
    with pytest.raises(ValueError, match="at least 2 classes"):
        be.label(["x"], [["ham"]])
    with pytest.raises(TypeError, match="list of strings"):
        be.label("just one string", VERB)
