"""Eager mode (``task_always_eager``) behaves as Django's ImmediateBackend.

``enqueue()`` sends ``task_enqueued``, runs the task in the caller, sends ``task_started``
and ``task_finished``, and returns that same finished result; failures are the result's
(SystemExit included), a ``KeyboardInterrupt`` reaches the caller, a value JSON cannot
hold fails the task after ``task_finished``. A sync task runs in the calling thread outside
any event loop, so the ORM works in it and sees the caller's transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings

from celeriac import Celery, shared_task

from . import djtasks

try:
    from django.tasks import TaskResultStatus, signals, task_backends
except ImportError:  # Django 5.2: the backport
    from django_tasks import TaskResultStatus, signals, task_backends

FRAMEWORK_LOGGER = signals.logger.name  # django.tasks, or django_tasks for the backport

EAGER_TASKS = {
    "default": {
        "BACKEND": "celeriac.contrib.django.tasks.CeleriacBackend",
        "QUEUES": ["default", "emails"],
        "OPTIONS": {"task_always_eager": True},
    }
}


@pytest.fixture(autouse=True)
def eager() -> Iterator[None]:
    with override_settings(TASKS=EAGER_TASKS):
        yield


@pytest.fixture
def signals_seen() -> Iterator[list[tuple[str, Any, Any]]]:
    seen: list[tuple[str, Any, Any]] = []
    receivers = {}
    for name in ("task_enqueued", "task_started", "task_finished"):
        def receiver(sender: Any, task_result: Any, name: str = name, **_: Any) -> None:
            seen.append((name, task_result, task_result.status))

        receivers[name] = receiver
        getattr(signals, name).connect(receiver)
    yield seen
    for name, receiver in receivers.items():
        getattr(signals, name).disconnect(receiver)


def check_finished(result: Any, status: Any) -> None:
    assert result.status == status and result.is_finished
    assert result.enqueued_at <= result.started_at <= result.finished_at
    assert result.last_attempted_at == result.started_at
    assert result.worker_ids == [socket.gethostname()] and result.attempts == 1


@pytest.mark.parametrize("task", [djtasks.add, djtasks.add_async])
def test_enqueue_returns_the_finished_result(task: Any, signals_seen: list[tuple[str, Any, Any]]) -> None:
    result = task.enqueue(2, y=3)
    check_finished(result, TaskResultStatus.SUCCESSFUL)
    assert (result.return_value, result.args, result.kwargs, result.errors) == (5, [2], {"y": 3}, [])
    # The framework's order, each signal with the very result enqueue() returned.
    assert [(name, status) for name, _, status in signals_seen] == [
        ("task_enqueued", TaskResultStatus.READY), ("task_started", TaskResultStatus.RUNNING),
        ("task_finished", TaskResultStatus.SUCCESSFUL)]
    assert all(seen is result for _, seen, _ in signals_seen)


async def test_aenqueue_of_an_async_task(signals_seen: list[tuple[str, Any, Any]]) -> None:
    result = await djtasks.greet.aenqueue("eager")
    check_finished(result, TaskResultStatus.SUCCESSFUL)
    assert result.return_value == "hello eager"
    assert [name for name, _, _ in signals_seen] == ["task_enqueued", "task_started", "task_finished"]


def test_context_is_the_returned_result() -> None:
    result = djtasks.whoami.enqueue(label="x")
    assert result.return_value == {"id": result.id, "attempt": 1, "label": "x"}


@pytest.mark.parametrize(("task", "exception", "last_line"), [
    (djtasks.fail, ValueError, "ValueError: boom"),
    (djtasks.fail_async, ValueError, "ValueError: boom"),
    (djtasks.system_exit, SystemExit, "SystemExit: This Task failed due to SystemExit"),
    (djtasks.exit_one, SystemExit, "SystemExit: 1"),
    (djtasks.lambda_result, TypeError, "TypeError: Unsupported type: <class 'function'>"),
])
def test_a_failure_is_the_results_and_logged_once(task: Any, exception: type[BaseException], last_line: str,
                                                  signals_seen: list[tuple[str, Any, Any]],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    args = ["boom"] if task in (djtasks.fail, djtasks.fail_async) else []
    with caplog.at_level(logging.DEBUG, logger=FRAMEWORK_LOGGER):
        result = task.enqueue(*args)
    check_finished(result, TaskResultStatus.FAILED)
    [error] = result.errors
    assert error.exception_class is exception
    assert error.traceback.endswith(last_line + "\n"), error.traceback
    assert "During handling of the above exception" not in error.traceback, error.traceback
    assert "no running event loop" not in error.traceback
    with pytest.raises(ValueError, match="Task failed"):
        _ = result.return_value
    assert [name for name, _, _ in signals_seen] == ["task_enqueued", "task_started", "task_finished"]
    errors = [r for r in caplog.records if r.name == FRAMEWORK_LOGGER and r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "state=FAILED" in errors[0].getMessage()


def test_keyboard_interrupt_reaches_the_caller(signals_seen: list[tuple[str, Any, Any]],
                                               caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger=FRAMEWORK_LOGGER), pytest.raises(KeyboardInterrupt):
        djtasks.keyboard_interrupt.enqueue()
    assert [name for name, _, _ in signals_seen] == ["task_enqueued", "task_started"]
    assert not [r for r in caplog.records if r.name == FRAMEWORK_LOGGER]


@pytest.mark.django_db
def test_a_sync_task_uses_the_orm_inside_the_callers_transaction() -> None:
    from django.contrib.auth.models import User

    User.objects.create(username="eager")  # uncommitted: the test runs in a transaction
    assert djtasks.count_users.enqueue().return_value == 1


@pytest.mark.django_db
def test_celerys_eager_apply_runs_orm_code_in_the_caller(app: Celery) -> None:
    from django.contrib.auth.models import User

    @shared_task
    def count_users() -> int:
        return int(User.objects.count())

    User.objects.create(username="eager")
    assert count_users.apply().get() == 1


def test_the_apps_setting_makes_it_eager_too(app: Celery, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.conf, "task_always_eager", True)
    with override_settings(TASKS={"default": {**EAGER_TASKS["default"], "OPTIONS": {}}}):
        assert task_backends["default"].is_eager
        assert djtasks.add.enqueue(1, 1).return_value == 2


def test_get_result_finds_an_eager_result_when_stored(broker_url: str, app: Celery,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.conf, "task_store_eager_result", True)
    result = djtasks.add.using(priority=10).enqueue(2, 2)
    found = djtasks.add.get_result(result.id)
    # Every field, the task as enqueued included; the store's start and end are the
    # worker side's own readings, taken a moment apart from the signals' ones.
    assert dataclasses.replace(found, started_at=None, finished_at=None, last_attempted_at=None) == \
        dataclasses.replace(result, started_at=None, finished_at=None, last_attempted_at=None)
    for field in ("started_at", "finished_at"):
        assert abs(getattr(found, field) - getattr(result, field)) < dt.timedelta(milliseconds=50)
    failed = djtasks.fail.enqueue("stored")
    refreshed = djtasks.fail.get_result(failed.id)
    assert refreshed.errors[0].exception_class is ValueError
    assert refreshed.errors[0].traceback.endswith("ValueError: stored\n")
