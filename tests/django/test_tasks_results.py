"""What ``get_result()``, ``aget_result()``, ``refresh()`` and ``arefresh()`` give back once a
real worker ran Django tasks, on every broker and result store.

Every field of the framework's ``TaskResult`` must be true: the task as enqueued (with its
``.using()`` options), when it was enqueued, started and finished, its arguments (without
``CELERY_RESULT_EXTENDED``), the worker, the error with its traceback, the return value.
Failures include the ones a worker must survive: ``SystemExit``, ``KeyboardInterrupt``,
``sys.exit(1)``, a return value JSON cannot hold.
"""

from __future__ import annotations

import copy
import datetime as dt
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone

from celeriac import Celery

from . import djtasks
from .conftest import Servers
from .workers import worker_for

try:
    from django.tasks import TaskResultStatus
except ImportError:  # Django 5.2: the backport
    from django_tasks import TaskResultStatus

WORKER = f"celeriac@{socket.gethostname()}"  # the worker's default name, and so its worker id


def four_ways(task: Any, enqueued: Any) -> dict[str, Any]:
    """The result read back by every means the framework has."""
    refreshed, arefreshed = copy.copy(enqueued), copy.copy(enqueued)
    refreshed.refresh()
    async_to_sync(arefreshed.arefresh)()
    return {
        "get_result": task.get_result(enqueued.id),
        "aget_result": async_to_sync(task.aget_result)(enqueued.id),
        "refresh": refreshed,
        "arefresh": arefreshed,
    }


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)  # polling the store, as a caller of the framework's API must


def wait_done(app: Celery, *results: Any) -> None:
    for result in results:
        app.AsyncResult(result.id).get(timeout=30, propagate=False)


def check_ran(result: Any, enqueued: Any, status: Any) -> None:
    assert (result.id, result.task, result.status, result.backend) == (enqueued.id, enqueued.task, status, "default")
    assert result.enqueued_at == enqueued.enqueued_at
    assert result.enqueued_at <= result.started_at <= result.finished_at
    assert result.last_attempted_at == result.started_at
    assert (result.args, result.kwargs) == (enqueued.args, enqueued.kwargs)
    assert result.worker_ids == [WORKER] and result.attempts == 1
    assert result.is_finished


def check_failed(result: Any, enqueued: Any, exception: type[BaseException], last_line: str) -> None:
    check_ran(result, enqueued, TaskResultStatus.FAILED)
    [error] = result.errors
    assert error.exception_class is exception
    assert error.traceback.endswith(last_line + "\n"), error.traceback
    # One exception, no chained context: not "No module named 'uvloop'", not "no running
    # event loop" from the worker's own code around it.
    assert "During handling of the above exception" not in error.traceback, error.traceback
    with pytest.raises(ValueError, match="Task failed"):
        _ = result.return_value


def test_every_field_is_true_after_a_worker_ran_the_tasks(servers: Servers, app: Celery, tmp_path: Path) -> None:
    go = tmp_path / "go"
    as_enqueued = djtasks.add.using(priority=30, queue_name="emails", run_after=timezone.now())
    added = as_enqueued.enqueue(2, y=3)
    waiting = djtasks.wait_for.enqueue(str(go))
    greeted = djtasks.greet.enqueue("celeriac")
    context = djtasks.whoami.enqueue(label="ctx")
    failed = djtasks.fail.enqueue("boom")
    failed_async = djtasks.fail_async.enqueue("async boom")
    exited = djtasks.system_exit.enqueue()
    interrupted = djtasks.keyboard_interrupt.enqueue()
    exit_one = djtasks.exit_one.enqueue()
    unstorable = djtasks.lambda_result.enqueue()

    # Not started yet: exactly what enqueue() returned, whichever way it is read.
    for how, result in four_ways(as_enqueued, added).items():
        assert result == added, how
        assert (result.status, result.started_at, result.worker_ids, result.errors) == (
            TaskResultStatus.READY, None, [], []), how

    with worker_for(servers, app):
        wait_until(lambda: djtasks.wait_for.get_result(waiting.id).status == TaskResultStatus.RUNNING,
                   "the task to be RUNNING")
        for how, running in four_ways(djtasks.wait_for, waiting).items():
            assert running.status == TaskResultStatus.RUNNING, how
            assert running.enqueued_at == waiting.enqueued_at <= running.started_at, how
            assert running.last_attempted_at == running.started_at and running.finished_at is None, how
            assert (running.worker_ids, running.args) == ([WORKER], [str(go)]), how
        go.touch()
        wait_done(app, added, waiting, greeted, context, failed, failed_async, exited, interrupted, exit_one,
                  unstorable)

    for how, result in four_ways(as_enqueued, added).items():
        check_ran(result, added, TaskResultStatus.SUCCESSFUL)
        assert result.return_value == 5 and result.errors == [], how
        assert (result.task.priority, result.task.queue_name, result.task.run_after) == (
            30, "emails", as_enqueued.run_after), how
    for result in four_ways(djtasks.wait_for, waiting).values():
        check_ran(result, waiting, TaskResultStatus.SUCCESSFUL)
        assert result.return_value == 1  # context.attempt
    for result in four_ways(djtasks.greet, greeted).values():
        check_ran(result, greeted, TaskResultStatus.SUCCESSFUL)
        assert result.return_value == "hello celeriac"
    for result in four_ways(djtasks.whoami, context).values():
        check_ran(result, context, TaskResultStatus.SUCCESSFUL)
        assert result.return_value == {"id": context.id, "attempt": 1, "label": "ctx"}

    for result in four_ways(djtasks.fail, failed).values():
        check_failed(result, failed, ValueError, "ValueError: boom")
    for result in four_ways(djtasks.fail_async, failed_async).values():
        check_failed(result, failed_async, ValueError, "ValueError: async boom")
    for result in four_ways(djtasks.system_exit, exited).values():
        check_failed(result, exited, SystemExit, "SystemExit: This Task failed due to SystemExit")
    for result in four_ways(djtasks.keyboard_interrupt, interrupted).values():
        check_failed(result, interrupted, KeyboardInterrupt,
                     "KeyboardInterrupt: This Task failed due to KeyboardInterrupt")
    for result in four_ways(djtasks.exit_one, exit_one).values():
        check_failed(result, exit_one, SystemExit, "SystemExit: 1")
    for result in four_ways(djtasks.lambda_result, unstorable).values():
        check_failed(result, unstorable, TypeError, "TypeError: Unsupported type: <class 'function'>")


def test_a_task_that_never_ran_reports_why(servers: Servers, app: Celery) -> None:
    """Revoked before a worker took it: FAILED, never started, the reason as its error."""
    revoked = djtasks.add.enqueue(1, 1)
    app.control.revoke(revoked.id)
    with worker_for(servers, app):
        wait_done(app, revoked)
    for how, result in four_ways(djtasks.add, revoked).items():
        assert result.status == TaskResultStatus.FAILED and result.started_at is None, how
        assert result.worker_ids == [] and result.finished_at is not None, how
        assert (result.args, result.enqueued_at) == ([1, 1], revoked.enqueued_at), how
        [error] = result.errors
        assert error.exception_class.__name__ == "TaskRevokedError", how
        assert "revoked before it started" in error.traceback, how


@pytest.mark.parametrize("servers", ["sqlite", "redis"], indirect=True)  # deferral is the broker's
def test_started_at_follows_the_worker_not_the_caller(servers: Servers, app: Celery) -> None:
    """run_after in the future: started only once due, and get_result() says so."""
    run_after = timezone.now() + dt.timedelta(seconds=1.5)
    deferred = djtasks.add.using(run_after=run_after).enqueue(1, 1)
    with worker_for(servers, app):
        assert djtasks.add.get_result(deferred.id).status == TaskResultStatus.READY  # waiting in the schedule
        wait_done(app, deferred)
    done = djtasks.add.get_result(deferred.id)
    assert done.status == TaskResultStatus.SUCCESSFUL and done.return_value == 2
    assert done.enqueued_at < run_after <= done.started_at <= done.finished_at
    assert done.task.run_after == run_after
