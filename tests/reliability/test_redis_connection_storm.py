"""Connections cut again and again during ``delay()`` (issue 10, case 4), on a Redis of the
test's own (CLIENT KILL on the shared server would cut other tests' connections).

A resend after a lost reply must be recognised as the same call: no task runs twice
without a worker fault, and no ``delay()`` raises ``DuplicateTaskError`` for the message
it stored itself.
"""

from __future__ import annotations

import os
import random
import signal
import threading
from collections import Counter
from pathlib import Path

import pytest

from celeriac.exceptions import BrokerUnavailable, DuplicateTaskError

from ..own_redis import OwnRedis
from .conftest import Run
from .test_delivery import tasks_module
from .test_redis_restart import own_redis  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(300)]

SENDS = 400


def test_resends_after_cut_connections_never_run_a_task_twice(
    own_redis: OwnRedis, tmp_path: Path,  # noqa: F811
) -> None:
    import redis

    run = Run(own_redis.url, tmp_path / "executions.log")
    os.environ["RELIABILITY_BROKER_URL"] = own_redis.url
    tasks = tasks_module(run)
    worker = run.start_worker("-c", "50")
    stop = threading.Event()
    kills = 0

    def cut_connections() -> None:
        nonlocal kills
        admin = redis.Redis(port=own_redis.port)
        rng = random.Random(7)
        while not stop.wait(rng.uniform(0.002, 0.02)):  # a storm, not a timing: any rate will do
            try:
                kills += admin.client_kill_filter(_type="normal", skipme=True)
            except redis.RedisError:
                admin = redis.Redis(port=own_redis.port)

    killer = threading.Thread(target=cut_connections, daemon=True)
    killer.start()
    sent: list[str] = []
    gave_up: list[str] = []
    false_duplicates: list[str] = []
    try:
        for i in range(SENDS):
            task_id = f"storm-{i}"
            try:
                tasks.member.apply_async((i,), task_id=task_id)
                sent.append(task_id)
            except DuplicateTaskError:
                false_duplicates.append(task_id)
            except BrokerUnavailable:
                gave_up.append(task_id)  # the client gave up resending: stored or not, unknown
        stop.set()
        killer.join(10)
        assert kills > 0
        assert false_duplicates == []
        run.wait_for(lambda: set(sent) <= set(run.ends()), timeout=120, what="every sent task to run")
        worker.signal_group(signal.SIGTERM)
        assert worker.wait(60) == 0, worker.output()
    finally:
        stop.set()
        if worker.proc.poll() is None:  # a failed or timed-out test must not leave it running
            worker.signal_group(signal.SIGKILL)
            worker.proc.wait(10)
    ran: Counter[str] = run.ends()
    assert {task_id: n for task_id, n in ran.items() if n > 1} == {}
    assert set(ran) <= set(sent) | set(gave_up)
