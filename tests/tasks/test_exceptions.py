"""Exceptions as Celery's guide has them: args kept, Ignore, Reject, ImproperlyConfigured, timeouts, expiry."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from celeriac import Celery, signals, states
from celeriac.exceptions import (
    CeleryError,
    ConfigurationError,
    Ignore,
    ImproperlyConfigured,
    Reject,
    TaskError,
    TaskPredicate,
    TaskRevokedError,
    TimeoutError,
)

from ..unit.helpers import drain


class ExpectedException(Exception):
    """Celery's sentinel: equal when the args are."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExpectedException) and self.args == other.args

    def __hash__(self) -> int:
        return hash(self.args)


class NeedsTwo(Exception):
    """An exception whose __init__ takes other arguments than its args (Celery's UnpickleableException)."""

    def __init__(self, foo: str, bar: str | None = None) -> None:
        if bar is None:
            raise TypeError("bar must be given")
        super().__init__(foo)
        self.bar = bar


async def test_exceptions_come_back_with_their_args(app: Celery) -> None:
    @app.task
    def fail(*args: Any) -> None:
        raise ExpectedException("Task expected to fail", *args)

    @app.task
    def keyerror() -> None:
        raise KeyError("k")

    @app.task
    def odd() -> None:
        raise NeedsTwo("foo", "bar")

    failed, keyed, odd_one = fail.delay("test"), keyerror.delay(), odd.delay()
    await drain(app)
    with pytest.raises(ExpectedException) as raised:
        failed.get(timeout=5)
    assert raised.value == ExpectedException("Task expected to fail", "test")
    assert raised.value.args == ("Task expected to fail", "test")
    assert failed.status == states.FAILURE and failed.ready() and failed.failed() and not failed.successful()
    with pytest.raises(KeyError) as key:
        keyed.get(timeout=5)
    assert key.value.args == ("k",)
    with pytest.raises(TaskError) as wrapped:  # cannot be re-created from its args: said what it was
        odd_one.get(timeout=5)
    assert wrapped.value.exc_cls_name == "NeedsTwo" and wrapped.value.exc_args == ("foo",)
    assert "NeedsTwo" in str(wrapped.value) and "foo" in str(wrapped.value)


async def test_ignore_acknowledges_and_records_nothing(app: Celery) -> None:
    @app.task
    def skip() -> None:
        raise Ignore()

    result = skip.delay()
    await drain(app)  # fails the test if the message was dead-lettered
    assert result.state == states.PENDING
    clients = await app.clients()
    assert (await clients.admin.queue_depths()).get("celery", 0) == 0


async def test_reject_with_requeue_redelivers(app: Celery) -> None:
    @app.task(bind=True, acks_late=True)
    def reject_then_succeed(self: Any) -> str:
        if not self.request.delivery_info.get("redelivered"):
            raise Reject(requeue=True)
        return "second-pass"

    result = reject_then_succeed.delay()
    await drain(app)
    assert result.get(timeout=5) == "second-pass" and result.status == states.SUCCESS


async def test_reject_without_requeue_fails_and_dead_letters(app: Celery) -> None:
    failures: list[Any] = []

    @app.task
    def reject_without_requeue() -> None:
        raise Reject("rejected", requeue=False)

    def on_failure(sender: Any, task_id: str, exception: BaseException, **_: Any) -> None:
        failures.append((task_id, type(exception)))

    signals.task_failure.connect(on_failure)
    try:
        result = reject_without_requeue.delay()
        await drain(app, expect_dead_letters=True)
    finally:
        signals.task_failure.disconnect(on_failure)
    with pytest.raises(Reject, match="rejected"):
        result.get(timeout=5)
    assert result.status == states.FAILURE and result.failed() and not result.successful()
    assert failures == [(result.id, Reject)]
    clients = await app.clients()
    letters = await clients.admin.dead_letters(10)
    assert [d.task_id for d in letters] == [result.id] and "rejected" in letters[0].reason


async def test_get_timeout_and_expired_tasks(app: Celery) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    pending = add.delay(1, 1)
    with pytest.raises(TimeoutError):
        pending.get(timeout=0.05)
    with pytest.raises(builtins_timeout()):
        pending.get(timeout=0.05)
    expired = add.apply_async((1, 1), expires=-1)
    past = add.apply_async((2, 2), expires=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    await drain(app)
    for result in (expired, past):
        with pytest.raises(TaskRevokedError):
            result.get(timeout=5)
        assert result.status == states.REVOKED and result.ready() and not result.failed()
        assert not result.successful()


def builtins_timeout() -> type[BaseException]:
    import builtins

    return builtins.TimeoutError


def test_soft_time_limit_past_time_limit_is_refused(eager_app: Celery) -> None:
    app = Celery("limits", broker="memory://limits")

    @app.task(soft_time_limit=2, time_limit=1)
    def wrong() -> None: ...

    @eager_app.task(soft_time_limit=2, time_limit=1)
    def wrong_eager() -> None: ...

    for task in (wrong, wrong_eager):
        with pytest.raises(ValueError, match="soft_time_limit must be less than or equal to time_limit"):
            task.apply_async()
        with pytest.raises(ValueError, match="soft_time_limit must be less than or equal to time_limit"):
            task.delay()


def test_exception_tree() -> None:
    assert issubclass(ImproperlyConfigured, ConfigurationError) and issubclass(ImproperlyConfigured, CeleryError)
    assert issubclass(Reject, TaskPredicate) and issubclass(Ignore, TaskPredicate)
    assert issubclass(TimeoutError, builtins_timeout())
    assert Reject("why", requeue=True).requeue and Reject("why").reason == "why"
