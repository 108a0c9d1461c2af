# Two commands on a fresh machine: `make up` (the local CPU stack) and `make test` (the whole suite).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: up test lint typecheck bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Only what the CPU stack needs (no torch): a newcomer waits minutes.
$(VENV)/.stack-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[gateway,engine,cpu,triton]'
	@touch $@

# Everything the suite touches, torch (CPU build) for the PP-DocLayout tests included.
# PaddleOCR's Job API client (tests/jobs) comes in the paddleocr wheel, whose dependencies (PaddleX and its
# deep-learning stack) the client does not use: the wheel goes in without them, the client's own are in `dev`.
$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[gateway,engine,cpu,triton,torch,dev]'
	$(BIN)/pip install -q --no-deps paddleocr==3.7.0
	@touch $@ $(VENV)/.stack-installed

up: $(VENV)/.stack-installed
	$(BIN)/python -m localstack

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .

typecheck: $(VENV)/.dev-installed
	$(BIN)/mypy contract safefetch gateway jobs docengine devkit localstack

test: lint typecheck
	$(BIN)/python -m pytest

bench: $(VENV)/.dev-installed
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
