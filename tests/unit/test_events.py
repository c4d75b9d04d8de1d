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


async def test_the_timeline_events_and_the_minute_counts(backend_url: str) -> None:
    import time

    app = Celery("proj", broker=backend_url)

    @app.task
    def ok() -> int:
        return 1

    @app.task
    def bad() -> None:
        raise RuntimeError("no")

    before = time.time()
    good, _ = ok.delay(), bad.delay()
    await drain(app)
    broker = (await app.clients()).broker
    events = [decode_event(raw) for _, raw in await broker.read_events(None, 100)]
    mine = [(e.type, e.task_id) for e in events if e.task_id == good.id]
    assert mine == [("task-received", good.id), ("task-started", good.id), ("task-succeeded", good.id)]
    received, started = (e for e in events if e.task_id == good.id and e.type != "task-succeeded")
    assert received.sent_ts is not None and before - 1 <= received.sent_ts <= received.ts
    assert started.wait_s is not None and 0 <= started.wait_s < 60
    assert not any(e.type == "task-sent" for e in events)  # off by default

    minute = int(time.time() // 60)
    rows = {r.name: r for r in await broker.read_stats(minute - 2, minute)}
    assert rows[ok.name].succeeded == 1 and rows[ok.name].started == 1 and rows[ok.name].runtime_count == 1
    assert rows[ok.name].wait_count == 1 and rows[ok.name].queue == "celery"
    assert rows[bad.name].failed == 1
    await app.close()


async def test_task_sent_events_when_asked(backend_url: str) -> None:
    app = Celery("proj", broker=backend_url, task_send_sent_event=True)

    @app.task
    def ok() -> int:
        return 1

    sent = ok.delay()
    broker = (await app.clients()).broker
    [event] = [decode_event(raw) for _, raw in await broker.read_events(None, 10)]
    assert (event.type, event.task_id, event.name, event.queue) == ("task-sent", sent.id, ok.name, "celery")
    assert event.sent_ts is not None and event.hostname.startswith("client:")
    await app.close()


async def test_events_and_counts_are_off_with_task_events_off(backend_url: str) -> None:
    import time

    app = Celery("proj", broker=backend_url, worker_send_task_events=False)

    @app.task
    def ok() -> int:
        return 1

    ok.delay()
    await drain(app)
    broker = (await app.clients()).broker
    assert await broker.read_events(None, 10) == []
    minute = int(time.time() // 60)
    assert await broker.read_stats(minute - 2, minute) == []
    await app.close()


async def test_a_long_tasks_start_is_written_while_it_runs(backend_url: str) -> None:
    import asyncio

    app = Celery("proj", broker=backend_url)
    release = asyncio.Event()

    @app.task
    async def slow() -> None:
        await release.wait()

    result = slow.delay()
    worker = asyncio.create_task(drain(app))
    broker = (await app.clients()).broker
    try:
        for _ in range(200):
            kinds = {decode_event(raw).type for _, raw in await broker.read_events(None, 100)
                     if decode_event(raw).task_id == result.id}
            if "task-started" in kinds:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("task-started was not written while the task ran")
        assert kinds == {"task-received", "task-started"}
    finally:
        release.set()
        await worker
