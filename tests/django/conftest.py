"""Django for tests/django only: settings configured here, not through DJANGO_SETTINGS_MODULE.

``settings.configure()`` with the names of ``tests/django/settings.py`` (the crn_check
example's settings plus a Tasks backend), a test database in a temporary file that worker
subprocesses open too (``CRN_CHECK_DB``), and a fresh SQLite broker per test.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from celeriac import Celery

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "crn_check"

try:
    import django
except ImportError:  # the django extra is not installed: nothing here can run
    collect_ignore_glob = ["*"]
    django = None

WORKDIR = Path(tempfile.mkdtemp(prefix="celeriac-django-tests-"))
TEST_DB = WORKDIR / "django-test.sqlite3"


def _configure() -> None:
    from django.conf import settings

    if settings.configured:
        return
    if str(EXAMPLE) not in sys.path:
        sys.path.insert(0, str(EXAMPLE))
    module = importlib.import_module("tests.django.settings")
    values = {name: getattr(module, name) for name in dir(module) if name.isupper()}
    database = dict(values["DATABASES"]["default"])
    database["NAME"] = str(TEST_DB)
    database["TEST"] = {"NAME": str(TEST_DB)}  # a file, so worker subprocesses share it
    values["DATABASES"] = {"default": database}
    # Replaced per test by the broker_url fixture; never the example's own file.
    values["CELERY_BROKER_URL"] = values["CELERY_RESULT_BACKEND"] = f"sqlite:///{WORKDIR / 'broker.db'}"
    values["HOMETAX_URL"] = "http://127.0.0.1:9/wqAction.do"  # tests start their own stand-in
    settings.configure(**values)
    django.setup()


if django is not None:
    _had_settings_module = "DJANGO_SETTINGS_MODULE" in os.environ
    _configure()
    if not _had_settings_module:
        # Importing crn_check.celery sets it (as Celery's guide does); the rest of the
        # suite and its subprocesses must not inherit it.
        os.environ.pop("DJANGO_SETTINGS_MODULE", None)


def pytest_sessionfinish(session: pytest.Session) -> None:
    shutil.rmtree(WORKDIR, ignore_errors=True)


@pytest.fixture
def app() -> Celery:
    from crn_check.celery import app

    return app


@pytest.fixture
def broker_url(app: Celery, tmp_path: Path) -> Iterator[str]:
    """A fresh SQLite broker (and result store) for the project's app, for this test."""
    from celeriac._bridge import run_sync

    url = f"sqlite:///{tmp_path / 'celeriac-broker.db'}"
    saved = (app.conf.broker_url, app.conf.result_backend)
    run_sync(app.close())  # the bridge loop's clients still point at the last test's file
    app.conf.broker_url = app.conf.result_backend = url
    yield url
    run_sync(app.close())
    app.conf.broker_url, app.conf.result_backend = saved


@dataclass(frozen=True)
class Servers:
    """Where the project's app sends tasks and keeps results for one test."""

    kind: str  # memory, sqlite, redis or django-db (SQLite broker, results in Django's database)
    broker_url: str
    result_backend: str


@pytest.fixture(params=["memory", "sqlite", "redis",
                        # a worker process writes the rows, which this process then reads
                        pytest.param("django-db", marks=pytest.mark.django_db(transaction=True))])
def servers(request: pytest.FixtureRequest, app: Celery, tmp_path: Path) -> Iterator[Servers]:
    """Every broker and result store in turn, fresh for this test, set on the project's app."""
    from celeriac._bridge import run_sync
    from tests.conftest import redis_test_url

    kind = request.param
    with contextlib.ExitStack() as cleanup:
        if kind == "memory":
            url = f"memory://{uuid.uuid4().hex}"
        elif kind == "redis":
            url = cleanup.enter_context(redis_test_url("djtasks"))
        else:
            url = f"sqlite:///{tmp_path / 'celeriac-broker.db'}"
        chosen = Servers(kind, url, "django-db" if kind == "django-db" else url)
        saved = (app.conf.broker_url, app.conf.result_backend)
        run_sync(app.close())
        app.conf.broker_url, app.conf.result_backend = chosen.broker_url, chosen.result_backend
        try:
            yield chosen
        finally:
            run_sync(app.close())
            app.conf.broker_url, app.conf.result_backend = saved


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment of a worker subprocess: these settings, this test database."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.django.settings",
        CRN_CHECK_DB=str(TEST_DB),
        PYTHONPATH=os.pathsep.join([str(ROOT), str(EXAMPLE)]),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env
