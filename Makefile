# make demo  - set up .venv and run the reference app (examples/crn_check, Django + DRF) on SQLite:
#              the Hometax stand-in, a worker and the Django server; 1,000 numbers through the API
# make demo-plain - the same story without Django (`celeriac demo`)
# make test  - set up .venv and run the whole test suite (needs Redis for the Redis tests)
# make fuzz  - the property-based robustness tests (tests/robustness) with 50x the examples
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo demo-plain demo-django test fuzz lint typecheck check bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/crn_check/demo.py

demo-django: demo

demo-plain: $(STAMP)
	$(BIN)/celeriac demo

test: $(STAMP)
	$(BIN)/ruff check celeriac tests
	$(BIN)/mypy
	$(BIN)/pytest -q

# Thousands of random arguments, results, exceptions and raw envelopes per broker (memory,
# SQLite, Redis) against one live worker each; takes tens of minutes. Failing examples are
# kept in .pytest_cache/hypothesis and replayed first by the next `make test`.
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest -q --timeout=0 tests/robustness

lint: $(STAMP)
	$(BIN)/ruff check celeriac tests

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.db *.db-wal *.db-shm
