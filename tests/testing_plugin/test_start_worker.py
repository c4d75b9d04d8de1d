"""start_worker: a real worker in a thread of the test process, on memory://, SQLite and Redis."""

from __future__ import annotations

import os
import socket

import pytest

from celeriac import Celery
from celeriac.contrib.testing import worker as testing_worker
from celeriac.contrib.testing.worker import start_worker

WAIT_S = 30.0


def test_start_worker_runs_tasks_and_stops(backend_url: str) -> None:
    app = Celery("proj", broker=backend_url, set_as_current=False)

    @app.task(name="proj.add")
    def add(x: int, y: int) -> int:
        return x + y

    seen: list[str] = []
    testing_worker.test_worker_started.connect(lambda sender, **kw: seen.append("started"))
    testing_worker.test_worker_stopped.connect(lambda sender, **kw: seen.append("stopped"))
    with start_worker(app) as worker:  # the default ping check ran celery.ping through this worker
        assert worker.hostname == f"gen{os.getpid()}@{socket.gethostname()}"
        assert worker.pool == "solo" and worker.concurrency == 1
        assert add.delay(2, 3).get(timeout=WAIT_S) == 5
        thread = worker._thread
    assert thread is not None and not thread.is_alive()
    assert seen[-2:] == ["started", "stopped"]


def test_queues_and_excluded_queues_as_celery_reads_them() -> None:
    app = Celery("proj", broker="memory://start-worker-queues", set_as_current=False)
    with start_worker(app, queues="high,celery", exclude_queues=["celery"], perform_ping_check=False,
                      hostname="q@test", without_heartbeat=True) as worker:
        assert worker.queues == ["high"]
        assert worker.hostname == "q@test"


def test_a_worker_that_cannot_start_raises() -> None:
    app = Celery("proj", broker="redis://127.0.0.1:1/0", set_as_current=False)
    with pytest.raises(Exception), start_worker(app, perform_ping_check=False):  # noqa: B017
        pass
