# make demo  - set up .venv and run the reference app (examples/crn_check, Django + DRF) on SQLite:
#              the Hometax stand-in, a worker and the Django server; 1,000 numbers through the API
# make demo-plain - the same story without Django (`celeriac demo`)
# make test  - set up .venv and run the whole test suite (needs Redis for the Redis tests), then
#              again on Python 3.13 with the newest Django 6.x in .venv313 (see test-newest)
# make screenshots - the dashboard's pages into docs/images/, from its browser tests (Debian's chromium)
# make fuzz  - the property-based robustness tests (tests/robustness) with 50x the examples
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The second leg of the matrix: Python 3.13 with the newest Django 6.x. PYTHON_NEWEST is a
# python3.13 on PATH that runs (a pyenv shim for a version not selected does not), else
# pyenv's; empty when neither exists.
PYTHON_NEWEST ?= $(shell for p in python3.13 $$(pyenv root 2>/dev/null)/versions/3.13*/bin/python3.13; do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 13)' >/dev/null 2>&1 && { echo "$$p"; break; }; done)
VENV_NEWEST := .venv313
# What the second leg runs: the tiers that depend on the Python and Django versions (the
# Django integration, the task API, pure logic, every server's contract). The whole suite on
# both legs passed the 20-minute budget once PostgreSQL joined every broker-parametrized
# test; NEWEST_PYTEST_ARGS= (empty) runs all of it.
NEWEST_PYTEST_ARGS ?= tests/django tests/tasks tests/unit tests/contract
BIN_NEWEST := $(VENV_NEWEST)/bin
STAMP_NEWEST := $(VENV_NEWEST)/.installed

.PHONY: demo demo-plain demo-django test test-newest chromium screenshots fuzz lint typecheck check bench clean

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

# The matrix: Python 3.11 with Django 5.2 and the django-tasks backport (.venv: Django 6 needs
# Python 3.12, so pip resolves 5.2 there), then Python 3.13 with the newest Django 6.x.
test: $(STAMP) chromium
	$(BIN)/ruff check celeriac tests
	$(BIN)/mypy
	$(BIN)/pytest -q
	@$(MAKE) --no-print-directory test-newest

# The dashboard's browser tests (tests/dashboard) drive Debian's chromium through Playwright for
# Python, never a browser Playwright downloads. Installed with apt only when missing; when it
# cannot be, this says why and goes on: those tests then skip locally and fail under CI=true.
CHROMIUM ?= /usr/bin/chromium
chromium:
	@if [ ! -x "$(CHROMIUM)" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "make: installing Debian's chromium for the dashboard's browser tests (apt-get)"; \
			{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
				echo "make: apt-get could not install chromium; the browser tests will skip (fail under CI=true)." \
					"Install it by hand: apt-get install chromium" >&2; \
		else \
			echo "make: $(CHROMIUM) is missing and apt-get cannot run here (it needs root): run" \
				"'sudo apt-get install chromium'; until then the browser tests skip (and fail under CI=true)" >&2; \
		fi; \
	fi

# The dashboard's screenshots in docs/images/ (docs/dashboard.md), taken by its browser tests on SQLite.
screenshots: $(STAMP) chromium
	CELERIAC_DASHBOARD_SCREENSHOTS=1 $(BIN)/pytest -q -p no:cacheprovider tests/dashboard/test_browser.py -k sqlite

# The version-sensitive tiers again on Python 3.13 with the newest Django 6.x (django.tasks), in .venv313.
# Without a python3.13 it says so and passes locally; with CI=true it fails.
test-newest:
	@if [ -z "$(PYTHON_NEWEST)" ]; then \
		if [ "$$CI" = true ]; then \
			echo "make test: no python3.13 found (on PATH or in pyenv), so Django 6 cannot be tested; CI needs it" >&2; \
			exit 1; \
		fi; \
		echo "make test: no python3.13 found (on PATH or in pyenv): ran Python 3.11 + Django 5.2 only;" \
			"install Python 3.13 to test Django 6 too" >&2; \
	else \
		$(MAKE) --no-print-directory $(STAMP_NEWEST) && \
		echo "== Python 3.13, Django $$($(BIN_NEWEST)/python -c 'import django; print(django.__version__)')" && \
		$(BIN_NEWEST)/pytest -q -p no:cacheprovider $(NEWEST_PYTEST_ARGS); \
	fi

$(STAMP_NEWEST): pyproject.toml
	$(PYTHON_NEWEST) -m venv $(VENV_NEWEST)
	$(BIN_NEWEST)/pip install -q --upgrade pip
	$(BIN_NEWEST)/pip install -q --upgrade -e '.[dev]' 'Django>=6,<7'
	touch $(STAMP_NEWEST)

# Thousands of random arguments, results, exceptions and raw envelopes per broker (memory,
# SQLite, Redis) against one live worker each; takes tens of minutes. Failing examples are
# kept in .pytest_cache/hypothesis and replayed first by the next `make test`.
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest -q --timeout=0 tests/robustness

lint: $(STAMP)
	$(BIN)/ruff check celeriac tests

typecheck: $(STAMP)
	$(BIN)/mypy

# The three tables (bench/README.md): the queues on Redis (127.0.0.1:6379, db 14, flushed), on
# PostgreSQL (127.0.0.1:5432, db test, user postgres: a bench_<queue> schema each) and on SQLite.
# Peers whose pins clash with the venv are pip-installed into bench/.peer-libs/<queue> on first use.
bench: $(STAMP)
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m bench --server all

# Celery's own integration tests for canvas and tasks (5.5.3, from its sdist on PyPI), run
# against celeriac with only their imports changed (compat/celery_suite/run.py); broker and
# results on Redis db $(CELERY_SUITE_DB) (flushed first). Not part of `make test`: it takes
# about twenty minutes. It runs in its own venv ($(CELERY_SUITE_VENV)) with redis-py 7: the
# tests' own helpers (a plain StrictRedis) block on Redis for 10 s, longer than the 5 s
# socket timeout redis-py 8 sets by default (Celery's baseline gets 5.2.1 from kombu's pin).
# celery-suite-baseline runs the same files on Celery itself, in $(CELERY_VENV), for the
# count to compare with. CELERY_SUITE_ARGS goes to pytest.
CELERY_SUITE_DB ?= 9
CELERY_SUITE_VENV ?= .venv-celery-suite
CELERY_VENV ?= /tmp/celery-venv
CELERY_SUITE_ARGS ?=
.PHONY: celery-suite celery-suite-baseline
celery-suite:
	@[ -x $(CELERY_SUITE_VENV)/bin/python ] || $(PYTHON) -m venv $(CELERY_SUITE_VENV)
	$(CELERY_SUITE_VENV)/bin/pip install -q -e '.[celery-suite]' 'redis[hiredis]>=7,<8'
	$(CELERY_SUITE_VENV)/bin/python compat/celery_suite/run.py --db $(CELERY_SUITE_DB) -- $(CELERY_SUITE_ARGS)

celery-suite-baseline:
	@[ -x $(CELERY_VENV)/bin/python ] || $(PYTHON) -m venv $(CELERY_VENV)
	$(CELERY_VENV)/bin/pip install -q 'celery[redis]==5.5.3' pytest pytest-timeout 'pytest-subtests>=0.14.1' pydantic
	$(CELERY_VENV)/bin/python compat/celery_suite/run.py --target celery --db $(CELERY_SUITE_DB) -- $(CELERY_SUITE_ARGS)

clean:
	rm -rf $(VENV) $(VENV_NEWEST) .pytest_cache .mypy_cache .ruff_cache *.db *.db-wal *.db-shm
