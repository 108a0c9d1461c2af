# Two commands on a fresh machine: `make up` (the local CPU stack) and `make test` (the whole suite).
# `make test-docker` builds the CPU images and runs the compose cpu profile with a real Docker daemon.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: up test test-docker lint typecheck bench clean

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
	$(BIN)/mypy contract safefetch gateway jobs imagelinks docengine devkit localstack webui

test: lint typecheck
	$(BIN)/python -m pytest

# Docker for the tests: where no daemon answers, or python:3.11-slim cannot be pulled, this script (beside the
# repository, as in CI) starts a daemon with no bridge network and builds a stand-in base image.
DOCKER_SETUP ?= ../shared/docker/base-image.sh

test-docker: $(VENV)/.dev-installed
	@if [ -f "$(DOCKER_SETUP)" ]; then bash "$(DOCKER_SETUP)"; fi
	$(BIN)/python -m pytest -m docker --timeout=1800 tests/docker

bench: $(VENV)/.dev-installed
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
