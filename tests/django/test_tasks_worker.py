"""The worker process as Django's Tasks framework sees it: its log, its tracebacks, its exit."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from celeriac import Celery

from . import djtasks
from .conftest import EXAMPLE, ROOT, Servers
from .workers import celeriac_worker

try:
    from django.tasks import TaskResultStatus, signals
except ImportError:  # Django 5.2: the backport
    from django_tasks import TaskResultStatus, signals

ON_SERVERS = pytest.mark.parametrize("servers", ["sqlite", "redis"], indirect=True)
FRAMEWORK_LOGGER = signals.logger.name  # django.tasks, or django_tasks for the backport


def test_log_lines_once_and_tracebacks_without_uvloop(broker_url: str, app: Celery, tmp_path: Path) -> None:
    """DEBUG = True (what startproject writes) and no uvloop installed (the django extra has none).

    Django's logging then gives its logger a console handler of its own beside the worker's,
    which printed every framework line twice; and the worker loop, run inside the
    ``except ImportError`` of the uvloop import, chained that ImportError into every
    exception raised under it, so each failed async task's traceback began with it.
    """
    no_uvloop = tmp_path / "no_uvloop"
    no_uvloop.mkdir()
    (no_uvloop / "uvloop.py").write_text("raise ImportError(\"No module named 'uvloop'\")\n")
    added = djtasks.add.enqueue(1, 2)
    failed = djtasks.fail_async.enqueue("async boom")
    worker = celeriac_worker(broker_url, "--until-empty", DJANGO_DEBUG="1",
                             PYTHONPATH=os.pathsep.join([str(no_uvloop), str(ROOT), str(EXAMPLE)]))
    assert worker.process.wait(60) == 0, worker.output()
    log = worker.output()
    assert log.count(f"Task id={added.id} path=tests.django.djtasks.add state=SUCCESSFUL") == 1, log
    assert log.count(f"Task id={failed.id} path=tests.django.djtasks.fail_async state=FAILED") == 1, log
    assert "uvloop" not in log and "During handling" not in log, log
    [error] = djtasks.fail_async.get_result(failed.id).errors
    assert error.traceback.endswith("ValueError: async boom\n")
    assert "uvloop" not in error.traceback and "During handling" not in error.traceback, error.traceback


@ON_SERVERS
def test_an_idle_worker_exits_soon_after_sigterm(servers: Servers) -> None:
    """An idle worker stops without waiting out a long blocking reserve.

    Django's Tasks framework expects an idle worker gone within 0.5 s. What bounds it is
    the idle reserve window (a stop lets the reserve in flight finish, so that no message
    is leased to a reply nobody reads), so that is what this checks, not the clock: the
    machines are shared and noisy. The exit itself took 0.23-0.32 s here.
    """
    from celeriac.worker.loop import IDLE_RESERVE_TIMEOUT_S

    assert IDLE_RESERVE_TIMEOUT_S <= 0.25
    worker = celeriac_worker(servers.broker_url)
    time.sleep(0.5)  # idle: the fetch loop is inside a blocking reserve when the signal comes
    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(30) == 0, worker.output()


@ON_SERVERS
def test_sigterm_lets_a_running_task_finish(servers: Servers, app: Celery, tmp_path: Path) -> None:
    """Warm shutdown: the running task ends SUCCESSFUL, its result written before the exit."""
    go = tmp_path / "go"
    waiting = djtasks.wait_for.enqueue(str(go))
    worker = celeriac_worker(servers.broker_url)
    deadline = time.monotonic() + 30
    while djtasks.wait_for.get_result(waiting.id).status != TaskResultStatus.RUNNING:
        assert time.monotonic() < deadline, worker.output()
        time.sleep(0.02)
    worker.process.send_signal(signal.SIGTERM)
    time.sleep(0.2)  # the signal is being handled while the task still runs
    assert worker.process.poll() is None
    go.touch()
    assert worker.process.wait(30) == 0, worker.output()
    result = djtasks.wait_for.get_result(waiting.id)
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 1
