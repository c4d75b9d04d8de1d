"""Redis killed and restarted mid-run: nothing that ``delay()`` returned for is lost.

The test runs its own redis-server on a free port with ``appendonly yes`` and
``appendfsync always`` (so what Redis acknowledged survives a SIGKILL), never the
shared one.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import IN_CI, redis_available
from ..own_redis import OwnRedis
from .conftest import Run
from .test_delivery import tasks_module

pytestmark = pytest.mark.reliability


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    if not redis_available() or shutil.which("redis-server") is None:
        if IN_CI:
            pytest.fail("redis-server or celeriac.servers.redis is missing")
        pytest.skip("needs redis-server and the Redis broker")
    server = OwnRedis(tmp_path, "--appendonly", "yes", "--appendfsync", "always")
    server.start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.kill()


def test_redis_killed_and_restarted_mid_run_loses_nothing(own_redis: OwnRedis, tmp_path: Path) -> None:
    run = Run(own_redis.url, tmp_path / "executions.log")
    os.environ["RELIABILITY_BROKER_URL"] = own_redis.url
    tasks = tasks_module(run)
    try:
        run.start_worker("-c", "20")
        accepted: list[Any] = []
        stop = threading.Event()

        def produce() -> None:
            # Keep sending through the outage; a delay() that raises was never promised.
            while not stop.is_set():
                try:
                    accepted.append(tasks.nap.delay(0.3))
                except Exception:
                    time.sleep(0.05)
                time.sleep(0.01)

        producer = threading.Thread(target=produce)
        producer.start()
        run.wait_for(lambda: len(run.starts()) >= 20, what="tasks running before the crash")
        own_redis.kill()
        time.sleep(1.0)
        own_redis.start()
        time.sleep(1.0)
        stop.set()
        producer.join(30)
        assert len(accepted) > 20
        for result in accepted:
            assert result.get(timeout=90) == {"pid": run.workers[0].pid}
        assert all(run.ends()[r.id] >= 1 for r in accepted)
    finally:
        for worker in run.workers:
            if worker.proc.poll() is None:
                worker.signal_group(signal.SIGKILL)
                worker.proc.wait(10)
