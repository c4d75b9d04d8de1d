"""Eager mode, configuration, and messages the API must give."""

from __future__ import annotations

import logging
import types
from typing import Any

import pytest

from celeriac import Celery, shared_task
from celeriac.config import Settings
from celeriac.exceptions import ConfigurationError, MaxRetriesExceededError


def test_apply_runs_here_with_retries() -> None:
    app = Celery("eager", broker="memory://eager")

    @app.task(bind=True, max_retries=3)
    def flaky(self: Any) -> int:
        if self.request.retries < 2:
            raise self.retry(countdown=60)
        return int(self.request.retries)

    result = flaky.apply()
    assert result.get() == 2 and result.successful() and result.retries == 2


def test_apply_failure_and_max_retries() -> None:
    app = Celery("eager", broker="memory://eager2")

    @app.task(bind=True, max_retries=1)
    def always(self: Any) -> None:
        raise self.retry()

    result = always.apply()
    assert result.failed()
    with pytest.raises(MaxRetriesExceededError):
        result.get()


def test_task_always_eager() -> None:
    app = Celery("eager", broker="memory://eager3", task_always_eager=True)

    @app.task
    async def add(x: int, y: int) -> int:
        return x + y

    assert add.delay(1, 2).get() == 3


def test_calling_a_task_runs_the_function() -> None:
    app = Celery("direct", broker="memory://direct")

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    assert add(2, 3) == 5


def test_config_from_object_with_namespace() -> None:
    settings = types.SimpleNamespace(CELERY_BROKER_URL="memory://ns", CELERY_TASK_ALWAYS_EAGER=True,
                                     CELERY_RESULT_EXPIRES=60, DEBUG=True, BROKER_URL="memory://old")
    app = Celery("cfg")
    app.config_from_object(settings, namespace="CELERY")
    assert app.conf.broker_url == "memory://ns" and app.conf.task_always_eager is True
    assert app.conf.result_expires == 60 and "debug" not in app.conf


def test_visibility_timeout_is_ignored_with_a_pointer(caplog: pytest.LogCaptureFixture) -> None:
    conf = Settings(broker_transport_options={"visibility_timeout": 43200})
    with caplog.at_level(logging.WARNING):
        assert conf.lease_seconds() == 60.0
    assert "broker_lease_seconds" in caplog.text


def test_unknown_scheme_says_which() -> None:
    app = Celery("bad", broker="reds://localhost")
    with pytest.raises(ConfigurationError, match=r"'reds'.*expected one of"):
        app.new_clients()


def test_priority_out_of_range() -> None:
    app = Celery("prio", broker="memory://prio")

    @app.task
    def noop() -> None:
        return None

    with pytest.raises(ConfigurationError, match="0-9"):
        noop.apply_async(priority=12)


def test_shared_task_binds_to_current_app() -> None:
    @shared_task
    def mul(x: int, y: int) -> int:
        return x * y

    app = Celery("shared", broker="memory://shared", task_always_eager=True)
    assert mul.app is app
    assert app.get_task(mul.name) is mul
    assert mul.delay(3, 4).get() == 12


def test_public_names_are_pinned() -> None:
    import celeriac

    assert sorted(celeriac.__all__) == sorted([
        "App", "AsyncResult", "Celery", "EagerResult", "GroupResult", "Signature", "Task", "__version__",
        "chain", "chord", "chunks", "current_app", "group", "maybe_signature", "shared_task", "signature",
        "subtask", "xmap", "xstarmap",
    ])
