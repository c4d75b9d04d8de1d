"""The pools sync task bodies run in (celeriac/worker/pool.py), driven directly."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from celeriac import Celery
from celeriac.context import Request
from celeriac.exceptions import ConfigurationError, TimeLimitExceeded
from celeriac.execution import Outcome, execute
from celeriac.worker import Worker
from celeriac.worker.pool import INLINE, InlinePool, Pool, SoloPool, ThreadPool, make_pool

WAIT_S = 10.0  # only bounds a wait that should end at once; nothing is timed
caller_var: contextvars.ContextVar[str] = contextvars.ContextVar("caller_var", default="unset")


@pytest.fixture
def app() -> Celery:
    return Celery("pools", broker="memory://pools")


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """Holds a body on its thread until set; set at the end so no test leaves one stuck."""
    event = threading.Event()
    yield event
    event.set()


def request_for(task: Any, task_id: str = "t1", *args: Any) -> Request:
    return Request(id=task_id, task=task.name, args=list(args), kwargs={})


def held_task(app: Celery, gate: threading.Event, started: threading.Event) -> Any:
    @app.task
    def held() -> str:
        started.set()
        gate.wait(WAIT_S)
        return "finished"

    return held


# --- threads ------------------------------------------------------------------------


async def test_a_thread_pool_runs_the_body_on_its_threads_in_the_callers_context(app: Celery) -> None:
    @app.task(bind=True)
    def where(self: Any, x: int) -> tuple[int, str, str | None, str]:
        return x * 2, threading.current_thread().name, self.request.id, caller_var.get()

    pool = ThreadPool(2)
    caller_var.set("the worker's")
    outcome = await execute(where, request_for(where, "t1", 21), pool, None, None)
    assert outcome.kind == "success"
    value, thread, task_id, seen = outcome.value
    assert (value, task_id, seen) == (42, "t1", "the worker's")
    assert thread.startswith("celeriac-task") and thread != threading.current_thread().name
    # run() itself hands back what the body returned
    assert (await pool.run(where, request_for(where, "t2", 1), None, None))[::2] == (2, "t2")
    assert await pool.shutdown(WAIT_S) is False


@pytest.mark.parametrize("raised", [ValueError("boom"), StopIteration(), SystemExit(3)])
async def test_what_a_body_raises_is_carried_out_of_its_thread_as_its_outcome(
    app: Celery, raised: BaseException
) -> None:
    @app.task
    def fails() -> None:
        raise raised

    pool = ThreadPool(1)
    outcome = await execute(fails, request_for(fails), pool, None, None)
    assert outcome.kind == "failure" and outcome.exc is raised
    assert outcome.traceback is not None and type(raised).__name__ in outcome.traceback
    await pool.shutdown(WAIT_S)


async def test_past_its_time_limit_a_thread_task_fails_and_its_thread_is_abandoned(
    app: Celery, gate: threading.Event
) -> None:
    started = threading.Event()
    held = held_task(app, gate, started)
    pool = ThreadPool(1)
    outcome = await execute(held, request_for(held), pool, 0.01, None)
    assert outcome.kind == "failure" and isinstance(outcome.exc, TimeLimitExceeded)
    assert "cannot be stopped" in str(outcome.exc)
    assert started.is_set() and not gate.is_set()  # the body still runs on its thread
    assert await pool.shutdown(0.0) is True  # abandoned
    gate.set()
    assert await pool.shutdown(WAIT_S) is False  # once it ended, nothing is left behind


async def test_a_soft_time_limit_has_no_effect_on_a_thread(app: Celery, gate: threading.Event) -> None:
    started = threading.Event()
    held = held_task(app, gate, started)
    pool = ThreadPool(1)
    running = asyncio.ensure_future(execute(held, request_for(held), pool, None, 0.001))
    await asyncio.to_thread(started.wait, WAIT_S)
    await asyncio.sleep(0.01)  # past the soft limit, which raises nothing into the thread
    gate.set()
    outcome: Outcome = await running
    assert (outcome.kind, outcome.value) == ("success", "finished")
    assert await pool.shutdown(WAIT_S) is False


async def test_a_body_on_a_thread_cannot_be_cancelled_and_says_so_once(
    app: Celery, gate: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    started = threading.Event()
    held = held_task(app, gate, started)
    pool = ThreadPool(2)
    running = asyncio.ensure_future(pool.run(held, request_for(held, "busy"), None, None))
    await asyncio.to_thread(started.wait, WAIT_S)
    with caplog.at_level(logging.WARNING, "celeriac.worker"):
        assert pool.cancel("busy", hard=True) is False
        assert pool.cancel("busy", hard=True) is False
        assert pool.cancel("busy", hard=False) is False
    warnings = [r.getMessage() for r in caplog.records if "cannot be stopped" in r.getMessage()]
    assert len(warnings) == 1 and "busy" in warnings[0]
    assert pool.cancel("not-here", hard=True) is True  # nothing of it runs in this pool
    gate.set()
    assert await running == "finished"
    assert pool.cancel("busy", hard=True) is True
    assert await pool.shutdown(WAIT_S) is False


async def test_shutdown_reports_a_stuck_thread_as_abandoned(app: Celery, gate: threading.Event) -> None:
    started = threading.Event()
    held = held_task(app, gate, started)
    pool = ThreadPool(1)
    running = asyncio.ensure_future(pool.run(held, request_for(held), None, None))
    await asyncio.to_thread(started.wait, WAIT_S)
    running.cancel()  # the worker stops waiting (shutdown, a lost lease); the thread runs on
    with pytest.raises(asyncio.CancelledError):
        await running
    assert await pool.shutdown(0.01) is True
    gate.set()
    assert await pool.shutdown(WAIT_S) is False


async def test_shutdown_drops_bodies_not_started(app: Celery, gate: threading.Event) -> None:
    started = threading.Event()
    held = held_task(app, gate, started)

    @app.task
    def queued() -> str:
        return "ran"

    pool = ThreadPool(1)
    first = asyncio.ensure_future(pool.run(held, request_for(held, "first"), None, None))
    second = asyncio.ensure_future(pool.run(queued, request_for(queued, "second"), None, None))
    await asyncio.to_thread(started.wait, WAIT_S)
    assert await pool.shutdown(0.0) is True  # only the first is on a thread
    with pytest.raises(asyncio.CancelledError):
        await second  # waiting for a thread at shutdown: dropped, never run
    gate.set()
    assert await first == "finished"
    assert await pool.shutdown(WAIT_S) is False


async def test_solo_runs_one_body_at_a_time(app: Celery) -> None:
    lock = threading.Lock()
    in_flight = [0]
    most = [0]

    @app.task
    def counted(i: int) -> int:
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        threading.Event().wait(0.005)
        with lock:
            in_flight[0] -= 1
        return i

    pool = SoloPool()
    assert (pool.name, pool.concurrency) == ("solo", 1)
    results = await asyncio.gather(*(pool.run(counted, request_for(counted, f"t{i}", i), None, None)
                                     for i in range(4)))
    assert results == [0, 1, 2, 3] and most[0] == 1
    assert await pool.shutdown(WAIT_S) is False


# --- inline (eager apply) -------------------------------------------------------------


def drive(coro: Any) -> Outcome:
    """Run execute() as apply() does: in this thread, with no event loop, in one step."""
    with pytest.raises(StopIteration) as done:
        coro.send(None)
    outcome: Outcome = done.value.value
    return outcome


def test_inline_runs_the_body_here_with_no_loop(app: Celery) -> None:
    @app.task
    def where() -> tuple[str, bool]:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return threading.current_thread().name, False
        return threading.current_thread().name, True

    @app.task
    def fails() -> None:
        raise KeyError("k")

    assert drive(execute(where, request_for(where), INLINE, None, None)).value == (
        threading.current_thread().name, False)
    failed = drive(execute(fails, request_for(fails), INLINE, None, None))
    assert failed.kind == "failure" and isinstance(failed.exc, KeyError)


def test_inline_has_nothing_to_cancel_or_abandon() -> None:
    pool = InlinePool()
    assert (pool.name, pool.concurrency) == ("inline", 1)
    assert pool.cancel("any", hard=True) is False
    assert asyncio.run(pool.shutdown(0.0)) is False


# --- by name ----------------------------------------------------------------------------


async def test_make_pool_by_name(caplog: pytest.LogCaptureFixture) -> None:
    pools: list[Pool] = [make_pool("threads", "4"), make_pool("solo", 8)]
    assert [(type(p), p.name, p.concurrency) for p in pools] == [(ThreadPool, "threads", 4), (SoloPool, "solo", 1)]
    with caplog.at_level(logging.WARNING, "celeriac.worker"):
        fallback = make_pool("gevent", 3)  # prefork is real now (tests/prefork)
    assert (type(fallback), fallback.concurrency) == (ThreadPool, 3)
    assert "'gevent' is not available" in caplog.text
    with pytest.raises(ConfigurationError, match="'inline' is unknown"):
        make_pool("inline", 1)  # eager apply()'s pool is not a worker's
    for pool in [*pools, fallback]:
        assert await pool.shutdown(0.0) is False


# --- in a worker ------------------------------------------------------------------------


async def test_revoke_terminate_cancels_an_async_task_and_lets_a_sync_one_finish(
    gate: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    app = Celery("pools", broker=f"memory://{uuid.uuid4().hex}")
    started = threading.Event()
    held = held_task(app, gate, started)

    @app.task
    async def waits() -> None:
        await asyncio.sleep(WAIT_S)

    on_thread, on_loop = held.delay(), waits.delay()
    worker = Worker(app, until_empty=True, handle_signals=False, lease_s=0.3)  # renewals every 0.1 s
    running = asyncio.ensure_future(worker.run())
    await asyncio.to_thread(started.wait, WAIT_S)
    with caplog.at_level(logging.WARNING, "celeriac.worker"):
        await (await app.clients()).control.revoke([on_thread.id, on_loop.id], terminate=True)
        async with asyncio.timeout(WAIT_S):
            while await on_loop.astate() != "REVOKED" or "cannot be stopped" not in caplog.text:
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # the keeper reports both ids again at its next renewals
        gate.set()
        await running
    assert caplog.text.count("cannot be stopped") == 1
    assert await on_thread.aget(timeout=WAIT_S) == "finished"
    assert worker.abandoned_threads is False
