VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: install demo test test-server lint bench-smoke clean

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# torch is installed first and pinned, so no dependency can pull a CUDA build.
$(STAMP): $(PY) pyproject.toml
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/labelpipe run

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/python -m pytest -q -x --durations=15

# The openai backend against a real llama.cpp server (llama-cpp-python compiles from source: ~7 min on
# 2 cores the first time, then pip's wheel cache), so not part of `make test`.
test-server: $(STAMP)
	$(PIP) install -q -e ".[dev,llm-server]"
	HF_HUB_OFFLINE=1 $(VENV)/bin/python -m pytest -q -m server --durations=10 tests/test_llm_openai_server.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf runs/demo .pytest_cache
