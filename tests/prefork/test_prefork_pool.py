"""The prefork pool driven directly (``worker/prefork.py``), and what crosses to its children.

The pool forks its fork server from this test process; each test shuts it down, and the
last assertion of each is that no process of the pool is left.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import os
import signal
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from celeriac import Celery
from celeriac.context import Request
from celeriac.exceptions import Reject, Retry, SerializationError, TaskError, TimeLimitExceeded, WorkerLostError
from celeriac.execution import Outcome, _Raised, execute
from celeriac.worker import prefork
from celeriac.worker.cli import numbered_hostname, parse_autoscale
from celeriac.worker.pool import ThreadPool, make_pool
from celeriac.worker.prefork import PreforkPool
from celeriac.worker.prefork_child import decode_call, decode_frame, decode_outcome, encode_call, encode_outcome
from celeriac.worker.supervisor import process_count

from .conftest import alive, descendants, wait_until

WAIT_S = 30.0  # bounds a wait; nothing is timed


class TwoArguments(Exception):
    def __init__(self, code: int, detail: str) -> None:
        super().__init__(f"{code}: {detail}")


class Opaque:
    """Neither JSON nor pickle can carry it (it holds a lock)."""

    def __init__(self) -> None:
        import threading

        self.lock = threading.Lock()


def roundtrip_outcome(result: Any) -> Any:
    data = encode_outcome("t", result, 1234)
    return decode_outcome(decode_frame(data[4:]))


# --- what crosses ---------------------------------------------------------------------


def test_a_call_crosses_in_wire_form_and_falls_back_to_pickle() -> None:
    request = Request(id="t1", task="t", args=[dt.date(2024, 1, 2), uuid.UUID(int=3), decimal.Decimal("1.5"), b"x"],
                      kwargs={"n": {"__celeriac__": "not a tag"}}, retries=2, timelimit=(5.0, 3.0),
                      delivery_info={"queue": "q"})
    call = decode_frame(encode_call("t", request, 3.0)[4:])
    assert "pickle" not in call and call["soft"] == 3.0
    again = decode_call(call)
    assert again.args == request.args and again.kwargs == request.kwargs
    assert (again.id, again.retries, again.timelimit, again.delivery_info) == ("t1", 2, (5.0, 3.0), {"queue": "q"})
    pickled = decode_frame(encode_call("t", Request(id="t2", args=[frozenset({1})]), None)[4:])
    assert "pickle" in pickled and decode_call(pickled).args == [frozenset({1})]
    with pytest.raises(SerializationError, match="neither as JSON nor pickled"):
        encode_call("t", Request(id="t3", args=[Opaque()]), None)


def test_values_and_exceptions_come_back() -> None:
    assert roundtrip_outcome({"when": dt.datetime(2024, 1, 1, tzinfo=dt.UTC)}) == {
        "when": dt.datetime(2024, 1, 1, tzinfo=dt.UTC)}
    assert roundtrip_outcome(frozenset({2})) == frozenset({2})  # not JSON: pickled
    unsendable = roundtrip_outcome(Opaque())
    assert isinstance(unsendable, _Raised) and isinstance(unsendable.exc, SerializationError)
    plain = roundtrip_outcome(_Raised(ValueError("v"), "tb text"))
    assert type(plain.exc) is ValueError and plain.exc.args == ("v",) and plain.traceback == "tb text"
    rebuilt = roundtrip_outcome(_Raised(TwoArguments(1, "x"), "tb"))
    assert type(rebuilt.exc) is TwoArguments and str(rebuilt.exc) == "1: x"
    local = type("LocalOnly", (Exception,), {"__init__": lambda self, a, b: Exception.__init__(self, a)})
    unknown = roundtrip_outcome(_Raised(local("a", "b"), "tb"))
    assert isinstance(unknown.exc, TaskError) and "LocalOnly" in str(unknown.exc)


def test_retry_and_reject_keep_their_meaning_when_their_parts_do_not_pickle() -> None:
    retry = Retry(exc=TwoArguments(7, "later"), when=4.0)
    retry.new_args = ([1], {"k": 2})  # type: ignore[attr-defined]
    retry.lock = Opaque()  # type: ignore[attr-defined]  # makes the Retry itself unpicklable
    back = roundtrip_outcome(_Raised(retry, "tb")).exc
    assert isinstance(back, Retry) and back.when == 4.0 and back.new_args == ([1], {"k": 2})  # type: ignore[attr-defined]
    assert type(back.exc) is TwoArguments
    reject = Reject("no", requeue=False)
    reject.lock = Opaque()  # type: ignore[attr-defined]
    again = roundtrip_outcome(_Raised(reject, "tb")).exc
    assert isinstance(again, Reject) and again.requeue is False


@pytest.mark.skipif("outcome" not in getattr(_Raised, "__dataclass_fields__", {}),
                    reason="run_body does not classify in the body's thread in this version")
def test_the_childs_classification_crosses_so_handlers_do_not_run_twice() -> None:
    retry = Retry(exc=ValueError("cause"), when=2.0)
    outcome = Outcome("retry", exc=retry.exc, traceback="tb", retry_in_s=2.0, retry_args=([1], {}))
    outcome.handled = True
    back = roundtrip_outcome(_Raised(retry, "tb", outcome))
    assert back.outcome.kind == "retry" and back.outcome.handled is True
    assert back.outcome.exc is back.exc.exc and back.outcome.retry_args == ([1], {})


def test_command_line_values() -> None:
    assert parse_autoscale("10,3") == (10, 3) and parse_autoscale("3,10") == (10, 3)
    assert parse_autoscale("4") == (4, 0)
    for bad in ("", "a,b", "0,0", "1,2,3"):
        with pytest.raises(ValueError):
            parse_autoscale(bad)
    assert numbered_hostname(None, 2) == "celeriac2@%h" and numbered_hostname("w@x", 1) == "w1@x"
    assert numbered_hostname("w@x", None) == "w@x"
    assert process_count(None) == 1 and process_count("3") == 3 and process_count("auto") >= 1
    with pytest.raises(ValueError):
        process_count("0")


# --- the pool, in this process --------------------------------------------------------


@pytest.fixture
def app() -> Celery:
    app = Celery("prefork-direct", broker="memory://prefork-direct")

    @app.task(name="pid")
    def pid() -> int:
        return os.getpid()

    @app.task(name="sleep")
    def sleep(seconds: float) -> int:
        import time

        time.sleep(seconds)
        return os.getpid()

    @app.task(name="fails")
    def fails() -> None:
        raise KeyError("k")

    return app


@pytest.fixture
async def pools() -> AsyncIterator[list[PreforkPool]]:
    made: list[PreforkPool] = []
    yield made
    for pool in made:
        below = descendants(os.getpid()) & ({pool._zygote_pid} | descendants(pool._zygote_pid))
        await pool.shutdown(0.0)
        wait_until(lambda: not any(alive(p) for p in below), "the pool's processes to end")  # noqa: B023


def request(task_id: str, *args: Any) -> Request:
    return Request(id=task_id, args=list(args), kwargs={})


async def test_make_pool_prefork_and_its_default_size(app: Celery, pools: list[PreforkPool]) -> None:
    pool = make_pool("prefork", None, app=app)
    assert isinstance(pool, PreforkPool)
    pools.append(pool)
    assert pool.concurrency == prefork_cpu_count()
    app.conf.worker_concurrency = 3
    sized = make_pool("prefork", None, app=app)
    assert isinstance(sized, PreforkPool)
    pools.append(sized)
    assert sized.concurrency == 3
    assert isinstance(make_pool("threads", None, app=app), ThreadPool)


def prefork_cpu_count() -> int:
    from celeriac.worker.pool import cpu_count

    return cpu_count()


async def test_bodies_run_in_children_and_outcomes_are_classified(app: Celery, pools: list[PreforkPool]) -> None:
    pool = PreforkPool(2, app=app, max_tasks_per_child=2)
    pools.append(pool)
    await pool.start()
    ran = [await execute(app.tasks["pid"], request(f"t{i}"), pool, None, None) for i in range(6)]
    pids = [outcome.value for outcome in ran]
    assert all(o.kind == "success" for o in ran) and os.getpid() not in pids
    assert max(pids.count(p) for p in set(pids)) <= 2 and len(set(pids)) >= 3  # recycled every 2 tasks
    failed = await execute(app.tasks["fails"], request("f"), pool, None, None)
    assert failed.kind == "failure" and isinstance(failed.exc, KeyError)


async def test_time_limit_and_cancel_end_the_child(app: Celery, pools: list[PreforkPool]) -> None:
    pool = PreforkPool(1, app=app)
    pools.append(pool)
    await pool.start()
    with pytest.raises(TimeLimitExceeded):
        await pool.run(app.tasks["sleep"], request("slow", 30), 0.5, None)
    first = await pool.run(app.tasks["pid"], request("after"), None, None)
    running = asyncio.create_task(pool.run(app.tasks["sleep"], request("long", 30), None, None))
    wait_s = 0.0
    while not any(c.task_id == "long" for c in pool._children.values()) and wait_s < WAIT_S:
        await asyncio.sleep(0.02)
        wait_s += 0.02
    assert pool.cancel("long", hard=True) is True
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    await wait_for(lambda: not alive(first), "the terminated child to end")
    assert await pool.run(app.tasks["pid"], request("again"), None, None) != first
    assert pool.cancel("nobody", hard=True) is True  # runs nowhere here


async def test_a_killed_child_is_worker_lost_and_replaced(app: Celery, pools: list[PreforkPool]) -> None:
    pool = PreforkPool(1, app=app)
    pools.append(pool)
    await pool.start()
    victim = await pool.run(app.tasks["pid"], request("who"), None, None)
    running = asyncio.create_task(pool.run(app.tasks["sleep"], request("held", 30), None, None))
    await wait_for(lambda: any(c.task_id == "held" for c in pool._children.values()), "the task to start")
    os.kill(victim, signal.SIGKILL)
    lost = await asyncio.wait_for(running, WAIT_S)
    assert isinstance(lost, _Raised) and isinstance(lost.exc, WorkerLostError) and "SIGKILL" in str(lost.exc)
    assert await pool.run(app.tasks["pid"], request("next"), None, None) != victim


async def test_autoscale_grows_while_tasks_wait_and_shrinks_when_idle(
    app: Celery, pools: list[PreforkPool], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prefork, "AUTOSCALE_KEEPALIVE_S", 0.2)
    pool = PreforkPool(3, app=app, min_children=1)
    pools.append(pool)
    await pool.start()
    assert len(pool._children) == 1
    pids = await asyncio.gather(*(pool.run(app.tasks["sleep"], request(f"s{i}", 0.5), None, None) for i in range(3)))
    assert len(set(pids)) >= 2  # more children were forked while tasks waited
    await wait_for(lambda: pool._live() == 1, "idle children above the minimum to be retired")


async def test_shutdown_ends_every_process(app: Celery) -> None:
    pool = PreforkPool(2, app=app)
    await pool.start()
    below = descendants(os.getpid()) & ({pool._zygote_pid} | descendants(pool._zygote_pid))
    assert len(below) == 3  # fork server and two children
    running = asyncio.create_task(pool.run(app.tasks["sleep"], request("cut", 30), None, None))
    await wait_for(lambda: any(c.task_id == "cut" for c in pool._children.values()), "the task to start")
    assert await pool.shutdown(0.0) is False  # nothing abandoned: every child is ended
    await asyncio.wait([running], timeout=WAIT_S)
    await wait_for(lambda: not any(alive(p) for p in below), "every process to end")


async def wait_for(condition: Any, what: str) -> None:
    waited = 0.0
    while not condition():
        if waited > WAIT_S:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
        waited += 0.02
