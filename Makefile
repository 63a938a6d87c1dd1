# ratecard: two commands on a fresh machine.
#   make run    set everything up and run the demo on the embedded default
#   make test   set everything up and run the whole test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup run test lint bench clean system-deps

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

system-deps:
	@bash scripts/system-deps.sh

run: setup
	$(BIN)/python scripts/demo.py

lint: setup
	$(BIN)/ruff check src tests scripts $(wildcard bench)

test: setup system-deps lint
	$(BIN)/python -m pytest

bench: setup system-deps
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build src/*.egg-info
