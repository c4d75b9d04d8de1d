"""Apps for tests: Celery's ``celery.contrib.testing.app`` (``TestApp``, the app trap).

A test app runs on ``memory://`` unless its configuration names a broker: the in-process
broker and result store every app of the process shares under that name, as Celery's
test app shares kombu's in-memory transport. So an app made per test and a worker started
on the session's app see the same queues, as they do with Celery.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ... import _state
from ..._bridge import run_sync
from ...app import Celery

#: What a test app is configured with before the test's own ``celery_config``.
DEFAULT_TEST_CONFIG: dict[str, Any] = {
    "broker_url": "memory://",
    "worker_hijack_root_logger": False,
    "accept_content": ["json"],
    "enable_utc": True,
    "timezone": "UTC",
}

# Celery's constructor arguments that mean nothing here (a loader, a log class, ...):
# dropped rather than read as unknown settings.
_CELERY_ONLY_PARAMETERS = ("log", "loader", "amqp", "events", "control", "tasks", "fixups", "autofinalize",
                           "strict_typing", "changes", "namespace", "enable_logging")


class Trap:
    """Stands in for the current app and raises when anything uses it (``use_celery_app_trap``)."""

    def __getattr__(self, name: str) -> Any:
        # unittest.mock and inspect look for these on anything they are handed.
        if name in ("_is_coroutine", "__func__"):
            return None
        raise RuntimeError("Test depends on current_app")


def TestApp(name: str | None = None, config: dict[str, Any] | None = None, enable_logging: bool = False,
            set_as_current: bool = False, broker: str | None = None, backend: str | None = None,
            **kwargs: Any) -> Celery:
    """An app for a test: ``DEFAULT_TEST_CONFIG`` updated with ``config``; ``kwargs`` go to ``Celery()``."""
    from . import tasks  # noqa: F401  (celery.ping, which start_worker sends)

    settings = {**DEFAULT_TEST_CONFIG, **(config or {})}
    if broker is not None:
        settings.pop("broker_url", None)
    if backend is not None:
        settings.pop("result_backend", None)
    for ignored in _CELERY_ONLY_PARAMETERS:
        kwargs.pop(ignored, None)
    return Celery(name or "celery.tests", broker=broker, backend=backend, set_as_current=set_as_current,
                  **{**settings, **kwargs})


@contextmanager
def set_trap(app: Celery) -> Iterator[None]:
    """While inside, using the current app raises ``RuntimeError``."""
    previous = _state.peek_current_app()
    _state._current_app = Trap()  # type: ignore[assignment]
    try:
        yield
    finally:
        _state._current_app = previous


@contextmanager
def setup_default_app(app: Celery, use_trap: bool = False) -> Iterator[None]:
    """Run a test with ``app`` and put back the current app afterwards; close ``app``'s
    connections of this thread."""
    previous = _state.peek_current_app()
    try:
        if use_trap:
            with set_trap(app):
                yield
        else:
            yield
    finally:
        _state._current_app = previous
        if app is not previous:
            run_sync(app.close())
