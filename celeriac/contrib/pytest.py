"""pytest fixtures under Celery's names, so a project's Celery tests run with the import changed.

Off until a project turns it on, as Celery's plugin is (``celery.contrib.pytest`` becomes
``celeriac.contrib.pytest``):

- ``pytest -p celeriac.contrib.pytest``, or ``PYTEST_PLUGINS=celeriac.contrib.pytest``;
- ``pytest_plugins = ("celeriac.contrib.pytest",)`` in the root ``conftest.py``;
- or ``celeriac_fixtures = true`` in the pytest configuration (read by the ``pytest11``
  entry point ``celeriac``, ``celeriac.contrib.testing.plugin``).

Fixtures: ``celery_app`` (a fresh app per test, on ``memory://`` unless ``celery_config``
names a broker), ``celery_worker`` (a real worker in a thread for the test), their session
twins ``celery_session_app`` and ``celery_session_worker``, and the fixtures a project
overrides to configure them: ``celery_config``, ``celery_parameters``, ``celery_includes``,
``celery_class_tasks``, ``celery_worker_pool``, ``celery_worker_parameters``,
``celery_enable_logging``, ``use_celery_app_trap``. ``@pytest.mark.celery(**settings)``
overrides settings for one test or class.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ..app import Celery
    from .testing.worker import TestWorkController

#: Set to skip starting workers (the fixtures then yield None), as Celery's ``NO_WORKER``.
NO_WORKER = os.environ.get("NO_WORKER")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "celery(**overrides): override celery configuration for a test case")


@contextmanager
def _create_app(enable_logging: bool = False, use_trap: bool = False,
                parameters: Mapping[str, Any] | None = None, **config: Any) -> Iterator[Celery]:
    from .testing.app import TestApp, setup_default_app

    app = TestApp(set_as_current=False, enable_logging=enable_logging, config=config, **dict(parameters or {}))
    with setup_default_app(app, use_trap=use_trap):
        yield app


def _marked_config(request: pytest.FixtureRequest, celery_config: Mapping[str, Any]) -> dict[str, Any]:
    mark = request.node.get_closest_marker("celery")
    return {**celery_config, **(mark.kwargs if mark else {})}


def _import_includes(includes: Sequence[str]) -> None:
    for module in includes:
        importlib.import_module(module)


def _register_class_task(app: Celery, task: Any) -> None:
    register = getattr(app, "register_task", None)
    if register is not None:
        register(task)
    else:
        app.register(task() if isinstance(task, type) else task)


@pytest.fixture(scope="session")
def use_celery_app_trap() -> bool:
    """Override to return True: using the current app (instead of the test's) then raises."""
    return False


@pytest.fixture(scope="session")
def celery_enable_logging() -> bool:
    """Accepted for Celery's fixtures: celeriac's embedded worker never sets up logging, so
    its records go wherever the test run sends them."""
    return False


@pytest.fixture(scope="session")
def celery_includes() -> Sequence[str]:
    """Override with modules to import before a worker starts (tasks, signal handlers)."""
    return ()


@pytest.fixture(scope="session")
def celery_worker_pool() -> Any:
    """Override with the pool of embedded workers (``"solo"``, ``"threads"``, ``"prefork"``)."""
    return "solo"


@pytest.fixture(scope="session")
def celery_config() -> Mapping[str, Any]:
    """Override with the test app's settings."""
    return {}


@pytest.fixture(scope="session")
def celery_parameters() -> Mapping[str, Any]:
    """Override with keyword arguments for the test app's ``Celery()``."""
    return {}


@pytest.fixture(scope="session")
def celery_worker_parameters() -> Mapping[str, Any]:
    """Override with arguments for embedded workers (``queues``, ``exclude_queues``,
    ``hostname``, ``shutdown_timeout``, ``perform_ping_check``...)."""
    return {}


@pytest.fixture(scope="session")
def celery_class_tasks() -> Sequence[Any]:
    """Override with task classes (or instances) to register on the session app."""
    return []


@pytest.fixture(scope="session")
def celery_session_app(request: pytest.FixtureRequest, celery_config: Mapping[str, Any],
                       celery_parameters: Mapping[str, Any], celery_enable_logging: bool,
                       use_celery_app_trap: bool) -> Iterator[Celery]:
    """An app for the whole session, made the current app (unless the trap is on)."""
    from .. import _state

    with _create_app(enable_logging=celery_enable_logging, use_trap=use_celery_app_trap,
                     parameters=celery_parameters, **_marked_config(request, celery_config)) as app:
        if not use_celery_app_trap:
            _state.set_current_app(app)
        yield app


@pytest.fixture(scope="session")
def celery_session_worker(request: pytest.FixtureRequest, celery_session_app: Celery,
                          celery_includes: Sequence[str], celery_class_tasks: Sequence[Any],
                          celery_worker_pool: Any,
                          celery_worker_parameters: Mapping[str, Any]) -> Iterator[TestWorkController | None]:
    """A worker on ``celery_session_app`` for the whole session."""
    from .testing.worker import start_worker

    if NO_WORKER:
        yield None
        return
    _import_includes(celery_includes)
    for task in celery_class_tasks:
        _register_class_task(celery_session_app, task)
    with start_worker(celery_session_app, pool=celery_worker_pool, **celery_worker_parameters) as worker:
        yield worker


@pytest.fixture()
def celery_app(request: pytest.FixtureRequest, celery_config: Mapping[str, Any],
               celery_parameters: Mapping[str, Any], celery_enable_logging: bool,
               use_celery_app_trap: bool) -> Iterator[Celery]:
    """A fresh app for one test (not made current, as in Celery; ``celery_worker`` makes it so)."""
    with _create_app(enable_logging=celery_enable_logging, use_trap=use_celery_app_trap,
                     parameters=celery_parameters, **_marked_config(request, celery_config)) as app:
        yield app


@pytest.fixture()
def celery_worker(request: pytest.FixtureRequest, celery_app: Celery, celery_includes: Sequence[str],
                  celery_worker_pool: Any,
                  celery_worker_parameters: Mapping[str, Any]) -> Iterator[TestWorkController | None]:
    """A worker on ``celery_app`` in a thread, stopped when the test ends."""
    from .testing.worker import start_worker

    if NO_WORKER:
        yield None
        return
    _import_includes(celery_includes)
    with start_worker(celery_app, pool=celery_worker_pool, **celery_worker_parameters) as worker:
        yield worker


@pytest.fixture()
def depends_on_current_app(celery_app: Celery) -> None:
    """Make ``celery_app`` the current app for the test."""
    from .. import _state

    _state.set_current_app(celery_app)
