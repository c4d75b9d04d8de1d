"""One poison message of each kind against three healthy workers nobody restarts (issue 10).

Every later task succeeds, the poison ends dead-lettered or FAILURE with its reason, and
every worker exits 0 on SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal

import pytest

from celeriac import Celery
from celeriac.servers.contracts import OutgoingMessage

from .conftest import Run
from .test_delivery import tasks_module

pytestmark = pytest.mark.reliability

RAW_POISON = {
    "tag-fails-to-decode": b'{"id":"%s","task":"reliability.echo",'
                           b'"args":[{"__celeriac__":"datetime","v":"user input"}]}',
    "too-deep": b'{"id":"%s","task":"reliability.echo","args":' + b"[" * 5000 + b"]" * 5000 + b"}",
    "not-json": b"%s \xff\xfe",
    "unknown-task": b'{"id":"%s","task":"reliability.no_such_task"}',
}


async def publish_raw(url: str) -> list[str]:
    app = Celery("poison", broker=url)
    broker = (await app.clients()).broker
    ids = [f"raw-{kind}" for kind in RAW_POISON]
    await broker.publish([OutgoingMessage(task_id, "celery", body.replace(b"%s", task_id.encode()))
                          for task_id, body in zip(ids, RAW_POISON.values(), strict=True)])
    await app.close()
    return ids


async def dead_letters(url: str) -> dict[str, str]:
    app = Celery("poison", broker=url)
    letters = await (await app.clients()).broker.dead_letters(1000)
    await app.close()
    return {letter.task_id: letter.reason for letter in letters}


def test_poison_of_every_kind_leaves_three_workers_running(run: Run) -> None:
    tasks = tasks_module(run)
    workers = [run.start_worker("-c", "8") for _ in range(3)]
    raw_ids = asyncio.run(publish_raw(run.broker_url))
    form = {"__celeriac__": "datetime", "v": "user input"}
    tagged = tasks.echo.delay(form)
    failing = [tasks.exits.delay(1), tasks.interrupted.delay(), tasks.undecodable_name.delay(),
               tasks.undecodable_error.delay()]
    canaries = [tasks.echo.delay(i) for i in range(60)]
    assert [c.get(timeout=60) for c in canaries] == [[[i], {}] for i in range(60)]
    assert tagged.get(timeout=60) == [[form], {}]
    for result in failing:
        result.get(timeout=60, propagate=False)
        assert result.state == "FAILURE", (result.id, result.state)
        assert result.traceback or result.result
    reasons = asyncio.run(dead_letters(run.broker_url))
    assert set(raw_ids) <= set(reasons), reasons
    assert all(reasons[i] for i in raw_ids)
    for worker in workers:
        assert worker.proc.poll() is None, worker.output()
        worker.signal_group(signal.SIGTERM)
    for worker in workers:
        assert worker.wait(60) == 0, worker.output()
