"""Running one task body and deciding what its ending means.

The worker and eager ``apply()`` both call :func:`execute`; this is the only place that
turns an exception into success, failure, retry, ignore or reject, so there is one
retry policy. ``async def`` bodies run here, on the caller's loop; a sync body goes to
a pool (``worker/pool.py``), which calls :func:`run_body` wherever it runs bodies.
"""

from __future__ import annotations

import asyncio
import random
import time
import traceback
from collections.abc import Coroutine, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from . import signals
from .context import Request, reset_request, set_request
from .exceptions import (
    Ignore,
    MaxRetriesExceededError,
    Reject,
    Retry,
    SoftTimeLimitExceeded,
    TimeLimitExceeded,
)

if TYPE_CHECKING:
    from .task import Task
    from .worker.pool import Pool

OutcomeKind = Literal["success", "failure", "retry", "ignore", "reject"]


@dataclass(slots=True)
class Outcome:
    kind: OutcomeKind
    value: Any = None
    exc: BaseException | None = None
    traceback: str | None = None
    retry_in_s: float | None = None  # for "retry": delay before the next attempt
    retry_args: tuple[list[Any], dict[str, Any]] | None = None  # new args given to retry()
    runtime_s: float = 0.0


async def execute(
    task: Task[Any, Any], request: Request, pool: Pool,
    time_limit: float | None, soft_time_limit: float | None,
) -> Outcome:
    """Run ``task`` for ``request`` (a sync body in ``pool``) and classify how it ended."""
    started = time.perf_counter()
    try:
        value = await _call(task, request, pool, time_limit, soft_time_limit)
    except asyncio.CancelledError as exc:
        if _is_cancelled_from_outside():
            raise
        # The body raised it itself: a failure of that task, not a cancellation by the worker.
        outcome = classify(task, request, exc, traceback.format_exc())
    except BaseException as exc:
        outcome = classify(task, request, exc, traceback.format_exc())
    else:
        if type(value) is _Raised:  # a sync body's exception, carried out of its pool as a value
            outcome = classify(task, request, value.exc, value.traceback)
        else:
            outcome = Outcome("success", value=value)
    outcome.runtime_s = time.perf_counter() - started
    return outcome


@dataclass(slots=True)
class _Raised:
    """What a sync task body raised, returned from its thread instead of raised through it.

    An exception set on an asyncio future is re-raised in the worker's loop, and some
    cannot travel that way: ``StopIteration`` is refused by the future, ``GeneratorExit``
    escapes the coroutine awaiting it. Carried as a value, every one is just the task's
    outcome.
    """

    exc: BaseException
    traceback: str


def classify(task: Task[Any, Any], request: Request, exc: BaseException, tb: str) -> Outcome:
    """What an exception from a task body means: the one place that decides it."""
    if isinstance(exc, Retry):
        return Outcome("retry", exc=exc.exc or exc, retry_in_s=exc.when, retry_args=getattr(exc, "new_args", None))
    if isinstance(exc, Ignore):
        return Outcome("ignore")
    if isinstance(exc, Reject):
        return Outcome("reject", exc=exc)
    if isinstance(exc, Exception) and not isinstance(exc, asyncio.CancelledError):
        return _failure_or_autoretry(task, request, exc, tb)
    # SystemExit, KeyboardInterrupt and friends (sys.exit(1) in a task body), or a
    # CancelledError the body raised itself: that task fails; the worker goes on.
    return Outcome("failure", exc=exc, traceback=tb)


def _is_cancelled_from_outside() -> bool:
    try:
        current = asyncio.current_task()
    except RuntimeError:  # no loop: eager apply() of a sync task; nothing outside could cancel it
        return False
    return current is None or current.cancelling() > 0


def _prerun(task: Task[Any, Any], request: Request) -> None:
    if signals.task_prerun.has_receivers:
        signals.task_prerun.send(sender=task, task_id=request.id, task=task, args=request.args,
                                 kwargs=request.kwargs)


def _postrun(task: Task[Any, Any], request: Request) -> None:
    if signals.task_postrun.has_receivers:
        signals.task_postrun.send(sender=task, task_id=request.id, task=task, args=request.args,
                                  kwargs=request.kwargs)


def _failure_or_autoretry(task: Task[Any, Any], request: Request, exc: Exception, tb: str) -> Outcome:
    if (
        task.autoretry_for
        and isinstance(exc, task.autoretry_for)
        and not (task.dont_autoretry_for and isinstance(exc, task.dont_autoretry_for))
        and (task.max_retries is None or request.retries < task.max_retries)
    ):
        return Outcome("retry", exc=exc, traceback=tb, retry_in_s=retry_delay(task, request.retries))
    return Outcome("failure", exc=exc, traceback=tb)


def retry_delay(task: Task[Any, Any], retries: int) -> float:
    """Seconds before attempt ``retries + 1``: Celery's exponential back-off with full jitter."""
    backoff = task.retry_backoff
    if not backoff:
        return float(task.default_retry_delay)
    factor = 1 if backoff is True else int(backoff)
    countdown = min(int(task.retry_backoff_max), factor * (2**retries))
    if task.retry_jitter:
        countdown = random.randrange(countdown + 1)
    return float(max(0, countdown))


def check_can_retry(task: Task[Any, Any], request: Request, exc: BaseException | None,
                    max_retries: int | None) -> None:
    limit = task.max_retries if max_retries is None else max_retries
    if limit is not None and request.retries >= limit:
        if exc is not None:
            raise exc
        raise MaxRetriesExceededError(
            f"can't retry {task.name}[{request.id}]: max_retries={limit} reached "
            f"(args={request.args!r}, kwargs={request.kwargs!r})"
        )


async def _call(
    task: Task[Any, Any], request: Request, pool: Pool,
    time_limit: float | None, soft_time_limit: float | None,
) -> Any:
    args = request.args
    kwargs = request.kwargs
    if task.is_async:
        token = set_request(request)
        _prerun(task, request)
        try:
            coro = task.run(*args, **kwargs)
            if soft_time_limit:
                coro = _with_soft_limit(coro, soft_time_limit)
            if time_limit:
                try:
                    async with asyncio.timeout(time_limit):
                        return await coro
                except TimeoutError:
                    raise TimeLimitExceeded(
                        f"task {task.name}[{request.id}] ran past time_limit={time_limit}s"
                    ) from None
            return await coro
        finally:
            _postrun(task, request)
            reset_request(token)
    return await pool.run(task, request, time_limit, soft_time_limit)


def run_body(task: Task[Any, Any], request: Request) -> Any:
    """Run a sync task's body, in whatever thread a pool runs it: its value, or a :class:`_Raised`."""
    token = set_request(request)
    _prerun(task, request)
    try:
        return task.run(*request.args, **request.kwargs)
    except BaseException as exc:
        return _Raised(exc, traceback.format_exc())
    finally:
        _postrun(task, request)
        reset_request(token)


async def _with_soft_limit(coro: Coroutine[Any, Any, Any], soft_s: float) -> Any:
    task = asyncio.current_task()
    assert task is not None
    interruptible = _Interruptible(coro, task)
    handle = asyncio.get_running_loop().call_later(soft_s, interruptible.interrupt)
    try:
        return await interruptible
    finally:
        handle.cancel()


class _Interruptible:
    """Drives a coroutine and can throw ``SoftTimeLimitExceeded`` into it at its await point.

    Cancelling the asyncio task wakes the coroutine wherever it waits; this wrapper
    swallows that cancellation and throws the soft-limit exception instead, so the task
    body can catch it and clean up, as with Celery.
    """

    def __init__(self, coro: Coroutine[Any, Any, Any], task: asyncio.Task[Any]) -> None:
        self.coro = coro
        self.task = task
        self.pending: BaseException | None = None

    def interrupt(self) -> None:
        self.pending = SoftTimeLimitExceeded("soft time limit exceeded")
        self.task.cancel()

    def __await__(self) -> Generator[Any, Any, Any]:
        to_send: Any = None
        to_throw: BaseException | None = None
        while True:
            try:
                yielded = self.coro.throw(to_throw) if to_throw is not None else self.coro.send(to_send)
            except StopIteration as stop:
                return stop.value
            to_send, to_throw = None, None
            try:
                to_send = yield yielded
            except asyncio.CancelledError as exc:
                if self.pending is not None:
                    to_throw, self.pending = self.pending, None
                    self.task.uncancel()
                else:
                    to_throw = exc
            except BaseException as exc:
                to_throw = exc
