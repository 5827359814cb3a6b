# Everything runs from .venv, created on demand: `make run` and `make test` work from a clean clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Two installs: `make run` needs the runtime only; tests, lint, audit and the benchmarks add
# the dev extras (browser driver, schema checkers, fuzzers, profilers) on top.
RUNTIME := $(VENV)/.runtime-stamp
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8080
DATA_DIR ?= .data

.PHONY: install run test test-fast lint audit bench clean screenshots

install: $(STAMP)

$(RUNTIME): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	@touch $(RUNTIME)

$(STAMP): $(RUNTIME)
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(RUNTIME)
	$(BIN)/dispatcher up --host $(HOST) --port $(PORT) --config deploy/demo.yaml --data-dir $(DATA_DIR) --simulate-agents

test: $(STAMP)
	$(BIN)/pytest

# The inner loop: everything but the tests marked slow, subprocess, browser or chaos
# (pyproject.toml), on every core, each pytest-xdist worker with an embedded Redis of its own.
# Bytecode is kept even where PYTHONDONTWRITEBYTECODE is set: compiling every module again
# is half of each worker's collection.
FAST := not slow and not subprocess and not browser and not chaos
WORKERS ?= auto
test-fast: $(STAMP)
	PYTHONDONTWRITEBYTECODE= $(BIN)/pytest -m "$(FAST)" -n $(WORKERS)

# The screenshots of README.md and docs/console.md, taken by the browser test that checks them.
screenshots: $(STAMP)
	DISPATCHER_SCREENSHOTS=docs/screenshots $(BIN)/pytest tests/browser/test_screens.py -q -p no:cacheprovider

# Benchmarks (bench/RESULTS.md): `make bench`, or some parts: `make bench PARTS="ingress e2e"`.
bench: $(STAMP)
	$(BIN)/python -m bench $(PARTS)

# Fault injection at full size (tests/chaos: 1,000 calls, repeated kills, Redis restarts);
# `make test` runs the same tests small. Each test prints a "CHAOS ..." line of figures.
chaos: $(STAMP)
	DISPATCHER_CHAOS=1 $(BIN)/pytest tests/chaos -s -p no:cacheprovider --timeout 900

lint: $(STAMP)
	$(BIN)/ruff check dispatcher workers tests bench
	$(BIN)/ruff format --check dispatcher workers tests bench
	$(BIN)/mypy

# Known vulnerabilities of the installed dependencies (PyPI's advisory data); fails on any.
# A package the service cannot look up is listed as skipped, not passed silently.
audit: $(STAMP)
	$(BIN)/pip-audit --skip-editable --progress-spinner off --desc on

clean:
	rm -rf $(VENV) $(DATA_DIR) .pytest_cache .mypy_cache .ruff_cache
