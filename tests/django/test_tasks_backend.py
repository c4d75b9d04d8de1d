"""Django's Tasks framework on celeriac: tasks written with ``@task`` run on a real worker.

The worker is ``python -m celeriac -A celeriac.contrib.django.project worker`` on a fresh
SQLite broker (or Redis, where the broker decides: priority, ``run_after``, queues);
results come back through ``get_result()`` / ``aget_result()``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone

from celeriac import Celery
from celeriac.contrib.django.tasks import CeleriacBackend, celeriac_priority, django_status

from . import djtasks
from .conftest import ROOT, Servers
from .test_api import queue_depths
from .workers import celeriac_worker

ON_SERVERS = pytest.mark.parametrize("servers", ["sqlite", "redis"], indirect=True)

try:
    from django.tasks import TaskResultStatus, task_backends
    from django.tasks.exceptions import TaskResultDoesNotExist
except ImportError:  # Django 5.2: the backport
    from django_tasks import TaskResultStatus, task_backends
    from django_tasks.exceptions import TaskResultDoesNotExist


def wait_done(app: Celery, *results: Any) -> None:
    """Wait on the store (celeriac's get, which polls SQLite with a bounded back-off)."""
    for result in results:
        app.AsyncResult(result.id).get(timeout=30, propagate=False)


def test_priority_maps_linearly_onto_0_to_9() -> None:
    assert [celeriac_priority(p) for p in (-100, -50, -1, 0, 1, 50, 99, 100)] == [0, 2, 4, 5, 5, 7, 9, 9]
    mapped = [celeriac_priority(p) for p in range(-100, 101)]
    assert mapped == sorted(mapped) and set(mapped) == set(range(10))
    with pytest.raises(ValueError, match="outside"):
        celeriac_priority(101)


def test_the_framework_follows_djangos_version_not_pythons() -> None:
    import tomllib

    import django

    from celeriac.contrib.django import tasks

    assert tasks._api.source == ("django.tasks" if django.VERSION >= (6, 0) else "django_tasks")
    # So the django extra brings the backport whatever the Python version (Django 5.2 runs
    # on 3.10 to 3.14); a requirement cannot depend on which Django gets installed.
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["django"]
    [backport] = [requirement for requirement in extra if requirement.startswith("django-tasks")]
    assert ";" not in backport, backport


def test_backend_is_the_configured_one() -> None:
    assert isinstance(task_backends["default"], CeleriacBackend)
    assert task_backends["default"].supports_get_result and task_backends["default"].supports_defer
    assert djtasks.add.get_backend() is task_backends["default"]


def test_enqueue_run_and_get_results(broker_url: str, app: Celery) -> None:
    added = djtasks.add.enqueue(2, 3)
    greeted = djtasks.greet.enqueue("celeriac")
    context = djtasks.whoami.enqueue(label="ctx")
    failed = djtasks.fail.enqueue("boom")
    assert added.status == TaskResultStatus.READY and added.enqueued_at is not None
    # Not started yet: found all the same, as READY, with its task and arguments.
    pending = djtasks.add.get_result(added.id)
    assert (pending.status, pending.args, pending.task.func) == (TaskResultStatus.READY, [2, 3], djtasks.add.func)
    # Queue names: Django's "default" is the app's default queue; "emails" stays itself.
    assert queue_depths(app) == {"celery": 3, "emails": 1}

    worker = celeriac_worker(broker_url)
    try:
        wait_done(app, added, greeted, context, failed)
    finally:
        assert worker.stop() == 0, worker.output()

    result = djtasks.add.get_result(added.id)
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 5
    assert result.finished_at is not None and result.attempts == 1 and result.args == [2, 3]
    added.refresh()
    assert added.status == TaskResultStatus.SUCCESSFUL and added.return_value == 5

    assert djtasks.greet.get_result(greeted.id).return_value == "hello celeriac"
    ctx = djtasks.whoami.get_result(context.id).return_value
    assert ctx == {"id": context.id, "attempt": 1, "label": "ctx"}

    failure = task_backends["default"].get_result(failed.id)
    assert failure.status == TaskResultStatus.FAILED and failure.task.func == djtasks.fail.func
    [error] = failure.errors
    assert error.exception_class is ValueError and "boom" in error.traceback
    with pytest.raises(ValueError, match="failed"):
        _ = failure.return_value

    # The worker's log names the Django task, not one generic runner.
    assert "tests.django.djtasks.add[" in worker.output()


def test_unknown_result_does_not_exist(broker_url: str) -> None:
    with pytest.raises(TaskResultDoesNotExist):
        task_backends["default"].get_result("no-such-id")


@ON_SERVERS
def test_priority_decides_the_order_of_a_backlog(servers: Servers, tmp_path: Path) -> None:
    log = tmp_path / "order.log"
    for priority in (-100, 0, 100, -50, 50, 0, 100):
        djtasks.append_line.using(priority=priority).enqueue(str(log), str(priority))
    # One at a time, the whole backlog waiting before the worker starts.
    worker = celeriac_worker(servers.broker_url, "-c", "1", "--until-empty")
    assert worker.process.wait(60) == 0, worker.output()
    assert log.read_text().split() == ["100", "100", "50", "0", "0", "-50", "-100"]


@ON_SERVERS
def test_run_after_defers_the_task(servers: Servers, app: Celery) -> None:
    run_after = timezone.now() + dt.timedelta(seconds=2.5)  # margin for a slow machine before the checks below
    worker = celeriac_worker(servers.broker_url)
    try:
        deferred = djtasks.add.using(run_after=run_after).enqueue(1, 1)
        now_ = djtasks.add.enqueue(2, 2)
        wait_done(app, now_)  # the worker is taking tasks, and still holds this one back
        status, depths = djtasks.add.get_result(deferred.id).status, queue_depths(app)
        if timezone.now() < run_after:  # a loaded machine may get here late; started_at below still tells
            assert status == TaskResultStatus.READY
            assert depths == {"celery": 1}  # waiting in the schedule
        wait_done(app, deferred)
    finally:
        assert worker.stop() == 0, worker.output()
    done = djtasks.add.get_result(deferred.id)
    assert done.status == TaskResultStatus.SUCCESSFUL and done.return_value == 2
    assert done.started_at >= run_after and done.task.run_after == run_after


@ON_SERVERS
def test_queue_name_routes_to_that_queue(servers: Servers, app: Celery, tmp_path: Path) -> None:
    log = tmp_path / "queues.log"
    emailed = djtasks.record_queue.enqueue(str(log), "emails")  # queue_name="emails"
    default = djtasks.append_line.enqueue(str(log), "default")  # Django's "default": the app's "celery"
    assert queue_depths(app) == {"emails": 1, "celery": 1}
    worker = celeriac_worker(servers.broker_url, "--until-empty", queues=("emails",))
    assert worker.process.wait(60) == 0, worker.output()
    assert log.read_text().split() == ["emails"]  # only the worker of its queue ran it
    assert djtasks.append_line.get_result(default.id).status == TaskResultStatus.READY
    assert djtasks.record_queue.get_result(emailed.id).task.queue_name == "emails"

    mapped_backend = {"default": {"BACKEND": "celeriac.contrib.django.tasks.CeleriacBackend",
                                  "QUEUES": ["default", "emails"], "OPTIONS": {"queue_map": {"emails": "mail"}}}}
    with override_settings(TASKS=mapped_backend):
        mapped = djtasks.record_queue.enqueue(str(log), "mail")
        assert queue_depths(app) == {"celery": 1, "mail": 1}
        worker = celeriac_worker(servers.broker_url, "--until-empty", queues=("mail",))
        assert worker.process.wait(60) == 0, worker.output()
        result = djtasks.record_queue.get_result(mapped.id)
    assert result.status == TaskResultStatus.SUCCESSFUL and result.task.queue_name == "emails"
    assert log.read_text().split() == ["emails", "mail"]


@pytest.mark.django_db(transaction=True)  # the worker writes results as rows of this database
async def test_aenqueue_and_aget_result_with_results_in_django(broker_url: str, app: Celery) -> None:
    from celeriac.contrib.django.models import TaskResult

    app.conf.result_backend = "django-db"
    await app.close()
    try:
        greeted = await djtasks.greet.aenqueue("async")
        worker = celeriac_worker(broker_url, CELERY_RESULT_BACKEND="django-db")
        try:
            await app.AsyncResult(greeted.id).aget(timeout=30)
        finally:
            worker.stop()
        result = await djtasks.greet.aget_result(greeted.id)
        assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == "hello async"
        row = await TaskResult.objects.aget(task_id=greeted.id)
        assert (row.state, row.task_name) == ("SUCCESS", "tests.django.djtasks.greet")
    finally:
        await app.close()


def test_status_mapping() -> None:
    expected = {"PENDING": "READY", "RECEIVED": "READY", "RETRY": "READY", "STARTED": "RUNNING",
                "SUCCESS": "SUCCESSFUL", "FAILURE": "FAILED", "REVOKED": "FAILED"}
    assert {state: str(django_status(state)) for state in expected} == expected
