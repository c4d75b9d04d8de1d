"""Events and inspect: task outcomes and heartbeats land in the broker's capped log."""

from __future__ import annotations

from celeriac import Celery
from celeriac.events import decode_event

from .helpers import drain


async def test_outcomes_and_worker_lifecycle_are_logged(backend_url: str) -> None:
    app = Celery("proj", broker=backend_url)

    @app.task
    def ok() -> int:
        return 1

    @app.task
    def bad() -> None:
        raise RuntimeError("no")

    good, failed = ok.delay(), bad.delay()
    await drain(app)
    broker = (await app.clients()).broker
    kinds = [(e.type, e.task_id) for e in (decode_event(raw) for _, raw in await broker.read_events(None, 100))]
    assert ("task-succeeded", good.id) in kinds and ("task-failed", failed.id) in kinds
    assert kinds[0][0] == "worker-online" and kinds[-1][0] == "worker-offline"


async def test_inspect_reads_heartbeats(backend_url: str) -> None:
    import asyncio

    app = Celery("proj", broker=backend_url, worker_heartbeat_seconds=0.05)

    @app.task
    async def slow() -> None:
        await asyncio.sleep(0.5)

    result = slow.delay()
    worker = asyncio.create_task(drain(app))
    for _ in range(100):
        found = await app.control.inspect().aworkers()
        if any(result.id in (event.held or []) for event in found.values()):
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("no heartbeat listed the running task")
    await worker
