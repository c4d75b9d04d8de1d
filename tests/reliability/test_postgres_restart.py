"""PostgreSQL crashed and restarted mid-run: nothing that ``delay()`` returned for is lost.

The test makes a cluster of its own with ``initdb`` on a free port and a temporary data
directory (never the shared server), stops it with ``pg_ctl -m immediate`` (no
checkpoint, every client cut off: a crash, recovered from the WAL at the next start) while
a producer keeps sending and a worker keeps running tasks, and starts it again. A commit
PostgreSQL acknowledged is durable (``synchronous_commit`` on, the default), so every
``delay()`` that returned must run; one that raised during the outage was never promised.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import IN_CI, postgres_available
from ..own_postgres import OwnPostgres, missing_reason
from .conftest import Run
from .test_delivery import tasks_module

pytestmark = pytest.mark.reliability


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    reason = missing_reason() if postgres_available() else "psycopg is not installed"
    if reason is not None:
        if IN_CI:
            pytest.fail(f"cannot make a PostgreSQL cluster of the test's own: {reason}")
        pytest.skip(reason)
    server = OwnPostgres()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


def test_postgres_crashed_and_restarted_mid_run_loses_nothing(own_postgres: OwnPostgres, tmp_path: Path) -> None:
    run = Run(own_postgres.url, tmp_path / "executions.log")
    os.environ["RELIABILITY_BROKER_URL"] = own_postgres.url
    tasks = tasks_module(run)
    try:
        run.start_worker("-c", "20")
        accepted: list[Any] = []
        refused: list[BaseException] = []
        stop = threading.Event()

        def produce() -> None:
            # Keep sending through the outage; a delay() that raises was never promised.
            while not stop.is_set():
                try:
                    accepted.append(tasks.nap.delay(0.3))
                except Exception as exc:
                    refused.append(exc)
                    time.sleep(0.05)
                time.sleep(0.01)

        producer = threading.Thread(target=produce)
        producer.start()
        run.wait_for(lambda: len(run.starts()) >= 20, what="tasks running before the crash")
        own_postgres.crash()
        time.sleep(1.0)
        own_postgres.start()
        time.sleep(1.0)
        stop.set()
        producer.join(30)
        assert len(accepted) > 20
        for result in accepted:
            assert result.get(timeout=90) == {"pid": run.workers[0].pid}, own_postgres.server_log()
        assert all(run.ends()[r.id] >= 1 for r in accepted)
        assert run.workers[0].proc.poll() is None  # the worker rode out the outage
    finally:
        for worker in run.workers:
            if worker.proc.poll() is None:
                worker.signal_group(signal.SIGKILL)
                worker.proc.wait(10)
