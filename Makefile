# make demo  - set up .venv and run the demo on the embedded SQLite broker
# make demo-django - the same story as a Django + DRF app (examples/crn_check), on SQLite
# make test  - set up .venv and run the whole test suite (needs Redis for the Redis tests)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo demo-django test lint typecheck check bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/celeriac demo

demo-django: $(STAMP)
	$(BIN)/python examples/crn_check/demo.py

test: $(STAMP)
	$(BIN)/ruff check celeriac tests
	$(BIN)/mypy
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check celeriac tests

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.db *.db-wal *.db-shm
