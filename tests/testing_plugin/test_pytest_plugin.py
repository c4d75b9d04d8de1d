"""The pytest fixtures, run by pytester on a small test suite written for Celery's plugin with only
the import changed (``celery`` to ``celeriac``)."""

from __future__ import annotations

import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]

TASKS_MODULE = '''
from celeriac import shared_task


@shared_task
def add(x, y):
    return x + y


@shared_task(bind=True)
def where(self):
    return self.request.hostname
'''

CONFTEST = '''
import pytest

pytest_plugins = ("celeriac.contrib.pytest",)


@pytest.fixture(scope="session")
def celery_config():
    return {BROKER}


@pytest.fixture(scope="session")
def celery_includes():
    return ["proj_tasks"]


@pytest.fixture(scope="session")
def celery_worker_pool():
    return "threads"


@pytest.fixture(scope="session")
def celery_parameters():
    return {"strict_typing": False}  # a Celery() argument that means nothing here
'''

CELERY_STYLE_TESTS = '''
import pytest

from celeriac import current_app


def test_create_task(celery_app, celery_worker):
    @celery_app.task
    def mul(x, y):
        return x * y

    celery_worker.reload()
    assert mul.delay(4, 4).get(timeout=10) == 16


def test_included_tasks_run_on_the_worker(celery_app, celery_worker):
    from proj_tasks import add, where

    assert add.delay(2, 2).get(timeout=10) == 4  # the worker made celery_app current
    assert where.delay().get(timeout=10) == celery_worker.hostname


@pytest.mark.celery(result_extended=True, task_default_queue="marked")
def test_mark_overrides_the_config(celery_app, celery_worker):
    assert celery_app.conf.result_extended is True
    assert celery_worker.queues == ["marked"]


def test_inspect_sees_the_embedded_worker(celery_app, celery_worker):
    assert celery_app.control.inspect(timeout=10).ping() == {celery_worker.hostname: {"ok": "pong"}}


def test_session_worker(celery_session_app, celery_session_worker):
    from proj_tasks import add

    assert current_app() is celery_session_app
    assert add.delay(3, 4).get(timeout=10) == 7


def test_celery_app_alone_is_not_current(celery_app):
    assert current_app() is not celery_app
'''


def _suite(pytester: pytest.Pytester, broker_config: str) -> None:
    pytester.makepyfile(proj_tasks=TASKS_MODULE)
    pytester.makeconftest(CONFTEST.replace("{BROKER}", broker_config))
    pytester.makepyfile(test_celery_style=CELERY_STYLE_TESTS)


def test_a_celery_style_suite_passes_on_memory(pytester: pytest.Pytester) -> None:
    _suite(pytester, "{}")  # the default: memory://
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=6)


def test_a_celery_style_suite_passes_on_sqlite(pytester: pytest.Pytester) -> None:
    database = pytester.path / "broker.db"
    _suite(pytester, repr({"broker_url": f"sqlite:///{database}"}))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=6)


def test_the_app_trap(pytester: pytest.Pytester) -> None:
    pytester.makeconftest('''
import pytest

pytest_plugins = ("celeriac.contrib.pytest",)


@pytest.fixture(scope="session")
def use_celery_app_trap():
    return True
''')
    pytester.makepyfile('''
import pytest

from celeriac import current_app


def test_using_the_current_app_raises(celery_app):
    with pytest.raises(RuntimeError, match="current_app"):
        current_app().conf
''')
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_the_fixtures_are_off_unless_enabled(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_it(celery_app):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'celery_app' not found*"])


def _entry_point_installed() -> bool:
    return any(ep.name == "celeriac" and ep.value == "celeriac.contrib.testing.plugin"
               for ep in entry_points(group="pytest11"))


def test_the_entry_point_is_declared() -> None:
    with open(ROOT / "pyproject.toml", "rb") as f:
        declared = tomllib.load(f)["project"]["entry-points"]["pytest11"]
    assert declared == {"celeriac": "celeriac.contrib.testing.plugin"}


def test_the_ini_option_turns_them_on(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nceleriac_fixtures = true\n")
    pytester.makepyfile('''
def test_it(celery_app, celery_worker):
    @celery_app.task
    def double(x):
        return 2 * x

    assert double.delay(21).get(timeout=10) == 42
''')
    if not _entry_point_installed():
        # celeriac was installed before the entry point was added to pyproject.toml: declare it
        # in a distribution's metadata beside the tests (the subprocess's working directory is
        # on its sys.path), as an install writes it.
        metadata = pytester.mkdir("celeriac_entry_point-0.dist-info")
        (metadata / "METADATA").write_text("Metadata-Version: 2.1\nName: celeriac-entry-point\nVersion: 0\n")
        (metadata / "entry_points.txt").write_text("[pytest11]\nceleriac = celeriac.contrib.testing.plugin\n")
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_p_option_loads_them(pytester: pytest.Pytester) -> None:
    pytester.makepyfile('''
def test_it(celery_session_app, celery_session_worker):
    assert celery_session_app.control.ping(timeout=10)
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "celeriac.contrib.pytest")
    result.assert_outcomes(passed=1)


def test_class_tasks_are_registered_on_the_session_app(pytester: pytest.Pytester) -> None:
    pytester.makeconftest('''
import pytest

from celeriac import Task

pytest_plugins = ("celeriac.contrib.pytest",)


class Hello(Task):
    name = "proj.hello"

    def run(self, who):
        return f"hello {who}"


@pytest.fixture(scope="session")
def celery_class_tasks():
    return [Hello]
''')
    pytester.makepyfile('''
def test_it(celery_session_app, celery_session_worker):
    assert celery_session_app.tasks["proj.hello"].delay("you").get(timeout=10) == "hello you"
''')
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
