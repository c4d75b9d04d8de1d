"""app.control through the event log: inspect, ping, revoke, rate_limit, consumers, shutdown.

Each test runs real workers on the test's event loop (several, where it matters) and
talks to them through a second app on the same broker, so every answer and every change
comes through the broker's event log, never through a shared object.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from celeriac import Celery
from celeriac.worker import Worker

WAIT_S = 30.0  # an upper bound for what must happen, never a measurement


@contextlib.asynccontextmanager
async def running(app: Celery, **options: Any) -> AsyncIterator[Worker]:
    """A worker on this loop, ready when the block starts, stopped and awaited when it ends."""
    options.setdefault("handle_signals", False)
    options.setdefault("shutdown_timeout_s", 1.0)  # a task still running at the end is cut off
    worker = Worker(app, **options)
    run = asyncio.create_task(worker.run())
    while not worker.ready.is_set():
        if run.done():
            run.result()
        await asyncio.sleep(0.01)
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(run, WAIT_S)


async def eventually(check: Any, what: str) -> Any:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


def apps(url: str) -> tuple[Celery, Celery]:
    """The workers' app (with the tasks) and a client app on the same broker (without them)."""
    worker_app = Celery("proj", broker=url, worker_heartbeat_seconds=0.2, set_as_current=False)

    @worker_app.task(name="proj.add")
    def add(x: int, y: int) -> int:
        return x + y

    @worker_app.task(name="proj.nap")
    async def nap(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "woke"

    client = Celery("client", broker=url, worker_heartbeat_seconds=0.2, set_as_current=False)
    return worker_app, client


async def test_inspect_answers_in_celerys_shapes(backend_url: str) -> None:
    worker_app, client = apps(backend_url)
    async with running(worker_app, hostname="w1@test", concurrency=4):
        sleeping = await client.asend_task("proj.nap", args=[60], kwargs={})
        inspect = client.control.inspect(timeout=WAIT_S)

        async def running_now() -> Any:
            found = await inspect.arequest("active")
            return found if found and found["w1@test"] else None

        active = (await eventually(running_now, "the task listed as active"))["w1@test"]
        assert [entry["id"] for entry in active] == [sleeping.id]
        entry = active[0]
        assert entry["name"] == entry["type"] == "proj.nap"
        assert entry["args"] == [60] and entry["kwargs"] == {}
        assert entry["hostname"] == "w1@test" and entry["worker_pid"] == os.getpid()
        assert isinstance(entry["time_start"], float)
        assert entry["delivery_info"] == {"exchange": "", "routing_key": "celery", "priority": 0,
                                          "redelivered": False}

        assert await inspect.arequest("ping") == {"w1@test": {"ok": "pong"}}
        assert await inspect.arequest("reserved") == {"w1@test": []}
        assert await inspect.arequest("scheduled") == {"w1@test": []}
        registered = (await inspect.arequest("registered"))["w1@test"]
        assert "proj.add" in registered and "proj.nap" in registered
        assert not any(name.startswith("celery.") for name in registered)
        stats = (await inspect.arequest("stats"))["w1@test"]
        assert stats["pid"] == os.getpid()
        assert stats["pool"]["max-concurrency"] == 4
        assert stats["total"] == {"proj.nap": 1}
        assert stats["uptime"] >= 0 and "rusage" in stats
        queues = (await inspect.arequest("active_queues"))["w1@test"]
        assert [(q["name"], q["routing_key"], q["exchange"]["name"]) for q in queues] == [
            ("celery", "celery", "celery")]
        query = (await inspect.arequest("query_task", ids=[sleeping.id, "unknown"]))["w1@test"]
        assert list(query) == [sleeping.id] and query[sleeping.id][0] == "active"


async def test_destination_and_ping_reach_only_the_named_workers(backend_url: str) -> None:
    worker_app, client = apps(backend_url)
    async with running(worker_app, hostname="w1@test"), running(worker_app, hostname="w2@test"):
        everyone = await client.control.abroadcast("ping", reply=True, timeout=WAIT_S)
        assert sorted(everyone or [], key=lambda r: next(iter(r))) == [
            {"w1@test": {"ok": "pong"}}, {"w2@test": {"ok": "pong"}}]
        one = client.control.inspect(destination=["w2@test"], timeout=WAIT_S)
        assert await one.arequest("ping") == {"w2@test": {"ok": "pong"}}
        # one name as a string: that worker's answer alone, as Celery's Inspect gives it
        alone = client.control.inspect(destination="w1@test", timeout=WAIT_S)
        assert await alone.arequest("ping") == {"ok": "pong"}
        matching = client.control.inspect(pattern="w2@*", timeout=WAIT_S)
        assert await matching.arequest("ping") == {"w2@test": {"ok": "pong"}}
        unknown = await client.control.abroadcast("no_such_command", reply=True, destination=["w1@test"],
                                                  timeout=WAIT_S)
        assert unknown is not None and "error" in unknown[0]["w1@test"]


async def test_no_worker_means_none_after_the_timeout(backend_url: str) -> None:
    _, client = apps(backend_url)
    assert await client.control.inspect(timeout=0.2).arequest("ping") is None
    assert await client.control.abroadcast("ping", reply=True, timeout=0.2) == []


async def test_requests_sent_before_a_worker_started_are_not_for_it(backend_url: str) -> None:
    worker_app, client = apps(backend_url)
    await client.control.abroadcast("shutdown")
    async with running(worker_app, hostname="w1@test"):
        assert await client.control.inspect(timeout=WAIT_S).arequest("ping") == {"w1@test": {"ok": "pong"}}


async def test_revoke_terminate_stops_a_running_task_without_waiting_for_a_renewal(backend_url: str) -> None:
    worker_app, client = apps(backend_url)
    # A lease of an hour: the lease keeper would look at the revoked set only every 20 minutes.
    async with running(worker_app, hostname="w1@test", lease_s=3600):
        sleeping = await client.asend_task("proj.nap", args=[3600], kwargs={})
        inspect = client.control.inspect(timeout=WAIT_S)

        async def is_running() -> bool:
            found = await inspect.arequest("active")
            return bool(found and found["w1@test"])

        await eventually(is_running, "the task running")
        replies = await client.control.arevoke(sleeping.id, terminate=True, reply=True, timeout=WAIT_S)
        assert replies == [{"w1@test": {"ok": f"terminate: {sleeping.id}"}}]
        await eventually(lambda: _state_of(client, sleeping.id, "REVOKED"), "the task revoked")
        assert sleeping.id in (await inspect.arequest("revoked"))["w1@test"]


async def _state_of(app: Celery, task_id: str, wanted: str) -> bool:
    store = (await app.clients()).store
    assert store is not None
    record = await store.fetch(task_id)
    return record is not None and record.state == wanted


async def test_rate_limit_is_applied_by_running_workers(backend_url: str) -> None:
    worker_app, client = apps(backend_url)
    async with running(worker_app, hostname="w1@test"):
        answer = await client.control.abroadcast("rate_limit", {"task_name": "proj.add", "rate_limit": "1/h"},
                                                 reply=True, timeout=WAIT_S)
        assert answer == [{"w1@test": {"ok": "new rate limit set successfully"}}]
        assert worker_app.tasks["proj.add"].rate_limit == "1/h"  # set by the worker, from the log
        sent = [await client.asend_task("proj.add", args=[i, i], kwargs={}) for i in range(3)]

        async def one_ran_two_wait() -> bool:
            done = [await _state_of(client, r.id, "SUCCESS") for r in sent]
            depths = await (await client.clients()).admin.queue_depths()
            return sum(done) == 1 and depths.get("celery") == 2

        await eventually(one_ran_two_wait, "one task run, two back in the schedule for their token")
        bad = await client.control.abroadcast("rate_limit", {"task_name": "proj.add", "rate_limit": "x/y"},
                                              reply=True, timeout=WAIT_S)
        assert bad is not None and "error" in bad[0]["w1@test"]
        unknown = await client.control.abroadcast("rate_limit", {"task_name": "nope", "rate_limit": "1/s"},
                                                  reply=True, timeout=WAIT_S)
        assert unknown == [{"w1@test": {"error": "unknown task"}}]
        off = await client.control.abroadcast("rate_limit", {"task_name": "proj.add", "rate_limit": 0},
                                              reply=True, timeout=WAIT_S)
        assert off == [{"w1@test": {"ok": "rate limit disabled successfully"}}]


async def test_add_and_cancel_consumer(backend_url: str) -> None:
    worker_app, client = apps(backend_url)
    async with running(worker_app, hostname="w1@test", queues=["a"]):
        elsewhere = await client.asend_task("proj.add", args=[1, 2], kwargs={}, queue="b")
        answer = await client.control.abroadcast("add_consumer", {"queue": "b"}, reply=True, timeout=WAIT_S)
        assert answer == [{"w1@test": {"ok": "add consumer b"}}]
        await eventually(lambda: _state_of(client, elsewhere.id, "SUCCESS"), "the task on queue b run")
        answer = await client.control.abroadcast("cancel_consumer", {"queue": "a"}, reply=True, timeout=WAIT_S)
        assert answer == [{"w1@test": {"ok": "no longer consuming from a"}}]
        queues = (await client.control.inspect(timeout=WAIT_S).arequest("active_queues"))["w1@test"]
        assert [q["name"] for q in queues] == ["b"]
        await client.control.abroadcast("cancel_consumer", {"queue": "b"})
        # consuming from no queue at all: the worker waits, still answering
        assert await client.control.inspect(timeout=WAIT_S).arequest("active_queues") == {"w1@test": []}


async def test_shutdown_stops_the_named_worker(backend_url: str) -> None:
    worker_app, client = apps(backend_url)
    async with running(worker_app, hostname="w1@test"):
        second = Worker(worker_app, hostname="w2@test", handle_signals=False)
        run = asyncio.create_task(second.run())
        await eventually(lambda: _ready(second), "the second worker ready")
        await client.control.abroadcast("shutdown", destination=["w2@test"])
        await asyncio.wait_for(run, WAIT_S)
        assert second.exit_code == 0
        assert await client.control.inspect(timeout=WAIT_S).arequest("ping") == {"w1@test": {"ok": "pong"}}


async def _ready(worker: Worker) -> bool:
    return worker.ready.is_set()
