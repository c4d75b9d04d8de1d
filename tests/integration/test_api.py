"""The Celery-compatible API, end to end through a real worker on every backend."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import uuid
from typing import Any

import pytest

from celeriac import Celery, group
from celeriac.exceptions import (
    DuplicateTaskError,
    SerializationError,
    SoftTimeLimitExceeded,
    TaskError,
    TaskRevokedError,
    TimeLimitExceeded,
)

from ..unit.helpers import drain


class CustomError(Exception):
    pass


@pytest.fixture
def app(backend_url: str) -> Celery:
    return Celery("proj", broker=backend_url)


async def test_delay_get_and_metadata(app: Celery) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    result = add.delay(2, 3)
    assert result.id and result.state == "PENDING" and not result.ready()
    await drain(app)
    assert result.get(timeout=5) == 5
    assert result.ready() and result.successful() and result.state == "SUCCESS"
    assert isinstance(result.date_done, dt.datetime)
    assert result.name == "proj.add" or result.name.endswith(".add")


async def test_async_task_and_await(app: Celery) -> None:
    @app.task
    async def double(x: int) -> int:
        await asyncio.sleep(0.01)
        return x * 2

    result = await double.adelay(21)
    await drain(app)
    assert await result == 42
    assert await result.aget(timeout=1) == 42


async def test_values_round_trip(app: Celery) -> None:
    @app.task
    def echo(value: Any) -> Any:
        return value

    value = {"when": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC), "id": uuid.uuid4(),
             "amount": decimal.Decimal("10.25"), "raw": b"\x00\x01", "day": dt.date(2024, 1, 2),
             "nested": [dt.timedelta(seconds=90)]}
    result = echo.delay(value)
    await drain(app)
    assert result.get(timeout=5) == value


async def test_unserializable_argument_fails_at_delay_naming_it(app: Celery) -> None:
    @app.task
    def take(x: Any, *, conn: Any = None) -> None:
        return None

    with pytest.raises(SerializationError, match="keyword argument 'conn'"):
        take.delay(1, conn=object())
    with pytest.raises(SerializationError, match="argument 0"):
        take.delay({1, 2})
    assert await (await app.clients()).broker.queue_depths() == {}


async def test_a_large_group_with_one_bad_member_sends_nothing_and_names_the_argument(app: Celery) -> None:
    """A group's members are built as the broker reads them (PostgreSQL's COPY writes each
    while the next is built): a bad one still fails the send whole, on every broker."""
    @app.task
    def take(x: Any) -> None:
        return None

    def members(bad_at: int | None, size: int = 300) -> Any:
        return group(take.s({1, 2} if i == bad_at else i) for i in range(size))

    with pytest.raises(SerializationError, match="argument 0 of"):
        members(bad_at=250).apply_async()
    with pytest.raises(TypeError, match="wrong arguments"):
        group([*(take.s(i) for i in range(200)), take.s(1, 2)]).apply_async()
    broker = (await app.clients()).broker
    assert await broker.queue_depths() == {}
    sent = members(bad_at=None).apply_async()
    assert await broker.queue_depths() == {"celery": 300}
    await drain(app)
    assert all(r.state == "SUCCESS" for r in sent.results)


def test_wrong_arguments_fail_at_delay() -> None:
    app = Celery("proj", broker="memory://wrong-args")

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    with pytest.raises(TypeError, match="wrong arguments"):
        add.delay(1, 2, 3)  # type: ignore[call-arg]


async def test_exception_class_is_reraised(app: Celery) -> None:
    @app.task
    def fail() -> None:
        raise CustomError("it broke")

    result = fail.delay()
    await drain(app)
    with pytest.raises(CustomError, match="it broke"):
        result.get(timeout=5)
    assert result.failed() and result.state == "FAILURE"
    assert "CustomError" in (result.traceback or "")
    assert isinstance(result.get(timeout=5, propagate=False), CustomError)


async def test_unknown_exception_class_becomes_task_error(app: Celery) -> None:
    from celeriac.message import FAILURE, ResultRecord

    store = await app.result_store()
    await store.store([ResultRecord(task_id="t1", state=FAILURE, exc_type="nowhere.Missing",
                                    exc_message="gone", traceback="tb")])
    with pytest.raises(TaskError) as info:
        await app.AsyncResult("t1").aget(timeout=1)
    assert info.value.exc_type == "nowhere.Missing" and info.value.remote_traceback == "tb"


async def test_ignored_result_returns_none_at_once(app: Celery) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    result = add.apply_async((1, 2), ignore_result=True)
    assert result.get() is None
    await drain(app)
    assert result.get() is None and not result.ready()


async def test_signature_semantics(app: Celery) -> None:
    @app.task
    def concat(a: str, b: str) -> str:
        return a + b

    partial = concat.s("second")
    assert partial.id is None
    assert repr(partial) == f"{concat.name}('second')"
    mutable = partial.delay("first")  # call-time args go first, as in Celery
    frozen = concat.si("x", "y").delay("ignored")
    by_name = app.send_task(concat.name, ["a", "b"])
    via_signature = concat.signature(args=["p"], countdown=0).apply_async(args=["o"])
    await drain(app)
    assert mutable.get(timeout=5) == "firstsecond"
    assert frozen.get(timeout=5) == "xy"
    assert by_name.get(timeout=5) == "ab"
    assert via_signature.get(timeout=5) == "op"
    cloned = partial.clone(kwargs={}).set(countdown=10)
    assert cloned.options["countdown"] == 10 and "countdown" not in partial.options


async def test_manual_retry_keeps_id_and_counts(app: Celery) -> None:
    @app.task(bind=True, max_retries=3)
    def flaky(self: Any, succeed_on: int) -> int:
        if self.request.retries < succeed_on:
            raise self.retry(countdown=0.05)
        return int(self.request.retries)

    result = flaky.delay(2)
    for _ in range(3):
        await drain(app)
        await asyncio.sleep(0.1)
    await drain(app)
    assert result.get(timeout=5) == 2 and result.retries == 2


async def test_autoretry_with_backoff_then_failure(app: Celery) -> None:
    calls: list[int] = []

    @app.task(autoretry_for=(ConnectionError,), max_retries=2, retry_backoff=False,
              default_retry_delay=0)
    def down() -> None:
        calls.append(1)
        raise ConnectionError("refused")

    result = down.delay()
    for _ in range(4):
        await drain(app)
    with pytest.raises(ConnectionError):
        result.get(timeout=5)
    assert len(calls) == 3  # the first run and two retries


async def test_expired_task_is_revoked_not_run(app: Celery) -> None:
    ran: list[int] = []

    @app.task
    def never() -> None:
        ran.append(1)

    result = never.apply_async(expires=dt.datetime(2000, 1, 1))
    await drain(app)
    assert result.state == "REVOKED" and ran == []
    with pytest.raises(TaskRevokedError, match="expired"):
        result.get(timeout=5)


async def test_revoked_before_start(app: Celery) -> None:
    @app.task
    def noop() -> None:
        return None

    result = noop.delay()
    result.revoke()
    await drain(app)
    assert result.state == "REVOKED"


async def test_duplicate_task_id_is_refused(app: Celery) -> None:
    @app.task
    def noop() -> None:
        return None

    noop.apply_async(task_id="fixed-id")
    with pytest.raises(DuplicateTaskError, match="fixed-id"):
        noop.apply_async(task_id="fixed-id")
    noop.apply_async(task_id="fixed-id", on_duplicate="ignore")
    await drain(app)
    noop.apply_async(task_id="fixed-id")  # finished: the id is free again


async def test_countdown_waits(app: Celery) -> None:
    @app.task
    def noop() -> str:
        return "done"

    result = noop.apply_async(countdown=0.3)
    assert await (await app.clients()).broker.queue_depths() == {"celery": 1}
    worker_task = asyncio.create_task(drain(app))
    assert await result.aget(timeout=5) == "done"
    await worker_task


async def test_unknown_task_and_malformed_message_go_to_dlq(app: Celery) -> None:
    from celeriac.servers import OutgoingMessage

    app.send_task("nobody.knows", [1])
    broker = (await app.clients()).broker
    await broker.publish([OutgoingMessage("garbage", "celery", b"not json")])
    await drain(app, expect_dead_letters=True)
    broker = (await app.clients()).broker  # the worker closed the clients it used
    reasons = {d.task_id: d.reason for d in await broker.dead_letters()}
    assert "malformed message" in reasons["garbage"]
    assert any("not registered" in reason for reason in reasons.values())


async def test_soft_and_hard_time_limits_on_async_tasks(app: Celery) -> None:
    @app.task(soft_time_limit=0.05)
    async def soft() -> str:
        try:
            await asyncio.sleep(5)
        except SoftTimeLimitExceeded:
            return "cleaned up"
        return "not interrupted"

    @app.task(time_limit=0.05)
    async def hard() -> None:
        await asyncio.sleep(5)

    soft_result, hard_result = soft.delay(), hard.delay()
    await drain(app)
    assert soft_result.get(timeout=5) == "cleaned up"
    with pytest.raises(TimeLimitExceeded):
        hard_result.get(timeout=5)


async def test_request_context(app: Celery) -> None:
    @app.task(bind=True)
    async def who(self: Any) -> dict[str, Any]:
        return {"id": self.request.id, "retries": self.request.retries,
                "queue": self.request.delivery_info["queue"], "eager": self.request.is_eager}

    result = who.delay()
    await drain(app)
    assert result.get(timeout=5) == {"id": result.id, "retries": 0, "queue": "celery", "eager": False}


async def test_link_callback_gets_the_result(app: Celery) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    callback = add.s(10).set(task_id="callback-id")
    add.apply_async((1, 2), link=callback)
    await drain(app)
    await drain(app)
    assert app.AsyncResult("callback-id").get(timeout=5) == 13


async def test_queues_and_routes(app: Celery) -> None:
    app.conf.task_routes = {"proj.route_*": {"queue": "special"}}

    @app.task(name="proj.route_me")
    def route_me() -> str:
        return "ok"

    result = route_me.delay()
    assert await (await app.clients()).broker.queue_depths() == {"special": 1}
    await drain(app, queues=["special"])
    assert result.get(timeout=5) == "ok"


async def test_result_extended_keeps_args(app: Celery) -> None:
    app.conf.result_extended = True

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    result = add.delay(4, 5)
    await drain(app)
    assert result.get(timeout=5) == 9 and result.args == [4, 5] and result.kwargs == {}


async def test_a_tasks_own_result_extended_keeps_its_call(app: Celery) -> None:
    """Per task, as Django's Tasks backend sets it; arguments stored in wire form, so values
    JSON has no spelling for (infinity) come back as sent, with the message's headers."""
    @app.task(result_extended=True)
    def size(values: dict[str, float], *, tag: str) -> int:
        return len(values)

    @app.task
    def plain() -> int:
        return 1

    kept = size.apply_async(({"x": float("inf")},), {"tag": "t"}, headers={"origin": "test"})
    bare = plain.delay()
    await drain(app)
    assert kept.get(timeout=5) == 1
    assert kept.args == [{"x": float("inf")}] and kept.kwargs == {"tag": "t"}
    store = await app.result_store()
    record = await store.fetch(kept.id)
    assert record is not None and record.headers == {"origin": "test"}
    assert record.date_started_ms is not None and record.date_done_ms is not None
    assert record.date_started_ms <= record.date_done_ms
    # The app's default (result_extended off) still keeps only the start time.
    assert bare.get(timeout=5) == 1 and bare.args is None
    bare_record = await store.fetch(bare.id)
    assert bare_record is not None and bare_record.date_started_ms is not None and bare_record.headers is None


async def test_dead_lettered_task_fails_instead_of_pending_forever(app: Celery) -> None:
    from celeriac.exceptions import Reject, WorkerLostError

    @app.task
    def refuse() -> None:
        raise Reject("bad input")

    result = refuse.delay()
    await drain(app, expect_dead_letters=True)
    with pytest.raises(Reject, match="bad input"):  # Celery's rule: the FAILURE holds the Reject
        result.get(timeout=5)
    sent = app.send_task("nobody.knows")
    await drain(app, expect_dead_letters=True)
    with pytest.raises(WorkerLostError, match="not registered"):
        sent.get(timeout=5)


async def test_pickle_task_retries(backend_url: str) -> None:
    app = Celery("proj", broker=backend_url, accept_content=["json", "pickle"], task_serializer="pickle")

    class Point:
        def __init__(self, x: int) -> None:
            self.x = x

    import sys

    sys.modules[__name__].Point = Point  # type: ignore[attr-defined]  # picklable by name
    Point.__qualname__ = "Point"

    @app.task(bind=True, max_retries=2, default_retry_delay=0)
    def flaky(self: Any, point: Any) -> int:
        if self.request.retries < 1:
            raise self.retry()
        return int(point.x)

    result = flaky.delay(Point(7))
    for _ in range(3):
        await drain(app)
    assert result.get(timeout=5) == 7


async def test_rate_limit_spreads_runs(app: Celery) -> None:
    import time

    starts: list[float] = []

    @app.task(rate_limit="20/s")
    def limited() -> None:
        starts.append(time.monotonic())

    for _ in range(30):
        limited.delay()
    await drain(app)
    assert len(starts) == 30
    # 20 at once (one second's burst), then the rest at about 20/s: never all 30 at once
    assert starts[-1] - starts[0] >= 0.3


def test_rate_parsing() -> None:
    from celeriac.exceptions import ConfigurationError
    from celeriac.worker.limits import parse_rate

    assert parse_rate("10/s") == 10 and parse_rate("120/m") == 2 and parse_rate(None) is None
    with pytest.raises(ConfigurationError, match="10/s"):
        parse_rate("ten per second")
