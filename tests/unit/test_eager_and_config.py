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


def test_apply_runs_a_sync_body_here_outside_any_loop() -> None:
    """In the calling thread with no event loop running, so code that refuses to run inside
    one (Django's ORM) works in eager mode, on the caller's own connection."""
    import asyncio
    import threading

    app = Celery("eager", broker="memory://eager-loop")
    seen: dict[str, Any] = {}

    @app.task
    def where() -> None:
        seen["thread"] = threading.current_thread()
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            seen["loop"] = None
        else:
            seen["loop"] = "running"

    where.apply()
    assert seen == {"thread": threading.current_thread(), "loop": None}


def test_eager_failures_carry_no_context_and_keyboard_interrupt_escapes() -> None:
    app = Celery("eager", broker="memory://eager-fail")

    @app.task
    async def fail_async() -> None:
        raise ValueError("async boom")

    @app.task
    def stop() -> None:
        raise SystemExit(3)

    @app.task
    def interrupt() -> None:
        raise KeyboardInterrupt

    @app.task
    def cancelled() -> None:
        import asyncio

        raise asyncio.CancelledError("by the body itself")

    failed = fail_async.apply()
    assert failed.failed() and "During handling" not in (failed.traceback or ""), failed.traceback
    assert failed.traceback is not None and failed.traceback.endswith("ValueError: async boom\n")
    exited = stop.apply()
    assert exited.failed() and isinstance(exited.result, SystemExit)
    with pytest.raises(KeyboardInterrupt):  # the caller's own Ctrl-C must stop the caller
        interrupt.apply()
    with pytest.raises(SystemExit):
        stop.apply(throw=True)
    assert cancelled.apply().failed()  # the body's own CancelledError, not the caller's


def test_eager_value_json_cannot_hold_fails_the_task() -> None:
    from celeriac.exceptions import SerializationError

    app = Celery("eager", broker="memory://eager-json")

    @app.task
    def unstorable() -> object:
        return object()

    result = unstorable.apply()
    assert result.failed() and isinstance(result.result, SerializationError)
    with pytest.raises(SerializationError):
        unstorable.apply(throw=True)


def test_task_store_eager_result_writes_the_result() -> None:
    app = Celery("eager", broker="memory://eager-store", task_store_eager_result=True)

    @app.task(result_extended=True)
    def add(x: int, y: int) -> int:
        return x + y

    result = add.apply((2, 3))
    stored = app.AsyncResult(result.id)
    assert stored.get(timeout=5) == 5 and stored.args == [2, 3]


async def test_aapply_async_eager_keeps_the_callers_context() -> None:
    app = Celery("eager", broker="memory://eager-ctx", task_always_eager=True)

    @app.task(bind=True)
    async def child(self: Any) -> str | None:
        return self.request.parent_id

    @app.task(bind=True)
    async def parent(self: Any) -> str | None:
        return (await child.aapply_async()).get()

    result = await parent.aapply_async()
    assert result.get() == result.id


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


def test_config_from_object_reads_only_the_settings_it_takes() -> None:
    """Django 6.1 warns on reading a deprecated setting (EMAIL_HOST_USER, ...): read none."""
    class Settings_:
        CELERY_BROKER_URL = "memory://lazy"

        @property
        def EMAIL_HOST_USER(self) -> str:
            raise AssertionError("read a setting celeriac does not use")

    app = Celery("cfg")
    app.config_from_object(Settings_(), namespace="CELERY")
    assert app.conf.broker_url == "memory://lazy"


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
