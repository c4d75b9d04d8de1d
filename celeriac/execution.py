"""Running one task body and deciding what its ending means.

The worker and eager ``apply()`` both call :func:`execute`; this is the only place that
turns an exception into success, failure, retry, ignore or reject, so there is one
retry policy. ``async def`` bodies run here, on the caller's loop; a sync body goes to
a pool (``worker/pool.py``), which calls :func:`run_body` wherever it runs bodies.

Around the body, in the thread that runs it and in Celery's order: ``task_prerun``, the
task's ``before_start``, the body, then for its outcome ``on_success`` + ``task_success``,
``on_failure`` + ``task_failure`` or ``on_retry`` + ``task_retry``, then ``after_return``
(success and failure only), then ``task_postrun``. A handler or receiver that raises is
logged and changes nothing; ``before_start`` raising fails the task, as in Celery.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import time
import traceback
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass
from types import TracebackType
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

logger = logging.getLogger("celeriac.worker")

OutcomeKind = Literal["success", "failure", "retry", "ignore", "reject"]
#: The state ``task_postrun`` and ``after_return`` name for each outcome (Celery's names).
STATE_OF: dict[str, str] = {"success": "SUCCESS", "failure": "FAILURE", "retry": "RETRY",
                            "ignore": "IGNORED", "reject": "REJECTED"}


@dataclass(slots=True)
class Outcome:
    kind: OutcomeKind
    value: Any = None
    exc: BaseException | None = None
    traceback: str | None = None
    retry_in_s: float | None = None  # for "retry": delay before the next attempt
    retry_args: tuple[list[Any], dict[str, Any]] | None = None  # new args given to retry()
    runtime_s: float = 0.0
    handled: bool = False  # the task's outcome handlers and signals have run


class ExceptionInfo:
    """What Celery passes as ``einfo`` (billiard's ``ExceptionInfo``): the exception and its traceback.

    ``type``, ``exception``, ``tb`` (the traceback object, when the exception was raised in
    this process), ``traceback`` (the text), ``exc_info``; ``str()`` is the text.
    """

    internal = False

    def __init__(self, exc: BaseException, traceback_text: str | None = None) -> None:
        self.type: type[BaseException] = type(exc)
        self.exception = exc
        self.tb: TracebackType | None = exc.__traceback__
        self.traceback = traceback_text if traceback_text is not None else "".join(
            traceback.format_exception(exc))
        self.exc_info = (self.type, exc, self.tb)

    def __str__(self) -> str:
        return self.traceback

    def __repr__(self) -> str:
        return f"<ExceptionInfo: {self.exception!r}>"


async def execute(
    task: Task[Any, Any], request: Request, pool: Pool,
    time_limit: float | None, soft_time_limit: float | None,
) -> Outcome:
    """Run ``task`` for ``request`` (a sync body in ``pool``) and classify how it ended."""
    started = time.perf_counter()
    try:
        if task.is_async:
            outcome = await _run_async(task, request, time_limit, soft_time_limit)
        else:
            returned = await pool.run(task, request, time_limit, soft_time_limit)
            if type(returned) is _Raised:  # a sync body's exception, carried out of its pool as a value
                outcome = returned.outcome or classify(task, request, returned.exc, returned.traceback)
            else:  # run_body ran the handlers in the body's thread (or process)
                outcome = Outcome("success", value=returned, handled=True)
    except asyncio.CancelledError as exc:
        if _is_cancelled_from_outside():
            raise
        # The body raised it itself: a failure of that task, not a cancellation by the worker.
        outcome = classify(task, request, exc, traceback.format_exc())
    except BaseException as exc:  # the pool gave up on the body (its time_limit passed)
        outcome = classify(task, request, exc, traceback.format_exc())
    if not outcome.handled:
        # A body still running on a thread must not run success handlers of its own later.
        request.abandoned = True
        await _handle_elsewhere(task, request, outcome)
    outcome.runtime_s = time.perf_counter() - started
    return outcome


@dataclass(slots=True)
class _Raised:
    """What a sync task body raised, returned from its thread instead of raised through it.

    An exception set on an asyncio future is re-raised in the worker's loop, and some
    cannot travel that way: ``StopIteration`` is refused by the future, ``GeneratorExit``
    escapes the coroutine awaiting it. Carried as a value, every one is just the task's
    outcome. ``outcome`` is how :func:`run_body` classified it, with ``handled`` set once
    the task's handlers ran for it; None when a pool makes one itself (for a body it lost),
    and the worker classifies it and runs the handlers then.
    """

    exc: BaseException
    traceback: str
    outcome: Outcome | None = None


def classify(task: Task[Any, Any], request: Request, exc: BaseException, tb: str) -> Outcome:
    """What an exception from a task body means: the one place that decides it."""
    if isinstance(exc, Retry):
        return Outcome("retry", exc=exc.exc or exc, retry_in_s=exc.when, retry_args=getattr(exc, "new_args", None))
    if isinstance(exc, Ignore):
        return Outcome("ignore", exc=exc)
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


def _postrun(task: Task[Any, Any], request: Request, outcome: Outcome | None) -> None:
    if signals.task_postrun.has_receivers:
        retval = None if outcome is None else (outcome.value if outcome.kind == "success" else outcome.exc)
        signals.task_postrun.send(sender=task, task_id=request.id, task=task, args=request.args,
                                  kwargs=request.kwargs, retval=retval,
                                  state=None if outcome is None else STATE_OF[outcome.kind])


def _failure_or_autoretry(task: Task[Any, Any], request: Request, exc: Exception, tb: str) -> Outcome:
    if (
        task.autoretry_for
        and isinstance(exc, task.autoretry_for)
        and not (task.dont_autoretry_for and isinstance(exc, task.dont_autoretry_for))
    ):
        # retry_kwargs are the arguments of the retry() autoretry makes, as in Celery.
        retry_kwargs = task.retry_kwargs or {}
        limit = retry_kwargs.get("max_retries", task.max_retries)
        if limit is None or request.retries < limit:
            if task.retry_backoff or "countdown" not in retry_kwargs:
                delay = retry_delay(task, request.retries)
            else:
                delay = float(retry_kwargs["countdown"])
            return Outcome("retry", exc=exc, traceback=tb, retry_in_s=delay)
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


# --- the task's handlers and outcome signals ------------------------------------------------


def has_custom(task: Task[Any, Any], name: str) -> bool:
    """Whether the task's class overrides the handler or method ``name`` of the base ``Task``."""
    return not getattr(getattr(type(task), name, None), "_celeriac_default", False)


def _invoke(task: Task[Any, Any], request: Request) -> Any:
    """Call the body: ``task(...)`` when its class overrides ``__call__`` (as Celery does), else ``run``."""
    body: Callable[..., Any] = task if has_custom(task, "__call__") else task.run
    return body(*request.args, **request.kwargs)


_Call = tuple[Callable[..., Any], str, tuple[Any, ...], dict[str, Any]]


def _outcome_calls(task: Task[Any, Any], request: Request, outcome: Outcome) -> list[_Call]:
    """The handlers and signals an outcome calls, in Celery's order: (function, what, args, kwargs)."""
    kind, task_id, args, kwargs = outcome.kind, request.id, request.args, request.kwargs
    calls: list[_Call] = []
    if kind == "success":
        if has_custom(task, "on_success"):
            calls.append((task.on_success, "on_success", (outcome.value, task_id, args, kwargs), {}))
        if signals.task_success.has_receivers:
            calls.append((signals.task_success.send, "task_success", (),
                          {"sender": task, "result": outcome.value, "task_id": task_id}))
        if has_custom(task, "after_return"):
            calls.append((task.after_return, "after_return", ("SUCCESS", outcome.value, task_id, args, kwargs, None),
                          {}))
    elif kind == "failure" and outcome.exc is not None:
        exc = outcome.exc
        einfo = ExceptionInfo(exc, outcome.traceback)
        if has_custom(task, "on_failure"):
            calls.append((task.on_failure, "on_failure", (exc, task_id, args, kwargs, einfo), {}))
        if signals.task_failure.has_receivers:
            calls.append((signals.task_failure.send, "task_failure", (),
                          {"sender": task, "task_id": task_id, "exception": exc, "args": args, "kwargs": kwargs,
                           "traceback": einfo.tb, "einfo": einfo}))
        if has_custom(task, "after_return"):
            calls.append((task.after_return, "after_return", ("FAILURE", exc, task_id, args, kwargs, einfo), {}))
    elif kind == "retry":
        reason = outcome.exc
        cause = reason.exc if isinstance(reason, Retry) else reason  # what was given to retry(exc=...)
        retry_info = ExceptionInfo(reason, outcome.traceback) if reason is not None else None
        if has_custom(task, "on_retry"):
            calls.append((task.on_retry, "on_retry", (cause, task_id, args, kwargs, retry_info), {}))
        if signals.task_retry.has_receivers:
            calls.append((signals.task_retry.send, "task_retry", (),
                          {"sender": task, "request": request, "reason": reason, "einfo": retry_info,
                           "task_id": task_id}))
    return calls


def _handle_sync(task: Task[Any, Any], request: Request, outcome: Outcome) -> None:
    for fn, what, args, kwargs in _outcome_calls(task, request, outcome):
        try:
            value = fn(*args, **kwargs)
            if inspect.isawaitable(value):
                _close(value)
                logger.error("%s of task %s is async: it runs only for async def tasks", what, task.name)
        except Exception:
            logger.exception("%s of task %s[%s] raised", what, task.name, request.id)
    outcome.handled = True


async def _handle_async(task: Task[Any, Any], request: Request, outcome: Outcome) -> None:
    for fn, what, args, kwargs in _outcome_calls(task, request, outcome):
        try:
            value = fn(*args, **kwargs)
            if inspect.isawaitable(value):
                await value
        except Exception:
            logger.exception("%s of task %s[%s] raised", what, task.name, request.id)
    outcome.handled = True


async def _handle_elsewhere(task: Task[Any, Any], request: Request, outcome: Outcome) -> None:
    """Run the handlers of an outcome decided outside the body's thread (a time limit on a thread)."""
    if not _outcome_calls(task, request, outcome):
        outcome.handled = True
        return
    token = set_request(request)
    try:
        if task.is_async:
            await _handle_async(task, request, outcome)
        elif _is_loop_running():  # not on the worker's loop: a handler may block
            await asyncio.to_thread(_handle_sync, task, request, outcome)
        else:
            _handle_sync(task, request, outcome)
    finally:
        reset_request(token)


def _is_loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _close(awaitable: Any) -> None:
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()


# --- running the body ----------------------------------------------------------------------


async def _run_async(task: Task[Any, Any], request: Request, time_limit: float | None,
                     soft_time_limit: float | None) -> Outcome:
    """Run an ``async def`` task on this loop, its handlers and signals around it."""
    token = set_request(request)
    _prerun(task, request)
    outcome: Outcome | None = None
    try:
        try:
            if has_custom(task, "before_start"):
                started = task.before_start(request.id, request.args, request.kwargs)
                if inspect.isawaitable(started):
                    await started
            coro = _invoke(task, request)
            if soft_time_limit:
                coro = _with_soft_limit(coro, soft_time_limit)
            if time_limit:
                try:
                    async with asyncio.timeout(time_limit) as deadline:
                        value = await coro
                except TimeoutError:
                    if not deadline.expired():
                        raise  # the body's own TimeoutError
                    raise TimeLimitExceeded(
                        f"task {task.name}[{request.id}] ran past time_limit={time_limit}s"
                    ) from None
            else:
                value = await coro
        except asyncio.CancelledError as exc:
            if _is_cancelled_from_outside():
                raise
            outcome = classify(task, request, exc, traceback.format_exc())
        except BaseException as exc:
            outcome = classify(task, request, exc, traceback.format_exc())
        else:
            outcome = Outcome("success", value=value)
        await _handle_async(task, request, outcome)
        return outcome
    finally:
        _postrun(task, request, outcome)
        reset_request(token)


def run_body(task: Task[Any, Any], request: Request) -> Any:
    """Run a sync task's body, in whatever thread a pool runs it: its value, or a :class:`_Raised`.

    The handlers and outcome signals run here too, after the body, in its thread; a
    :class:`_Raised` carries the outcome they ran for (``outcome.handled``).
    """
    token = set_request(request)
    _prerun(task, request)
    outcome: Outcome | None = None
    try:
        returned: Any
        try:
            if has_custom(task, "before_start"):
                task.before_start(request.id, request.args, request.kwargs)
            returned = _invoke(task, request)
        except BaseException as exc:
            tb = traceback.format_exc()
            outcome = classify(task, request, exc, tb)
            returned = _Raised(exc, tb, outcome)
        else:
            outcome = Outcome("success", value=returned)
        if not request.abandoned:  # the worker stopped waiting (time_limit): it ran the handlers
            _handle_sync(task, request, outcome)
        return returned
    finally:
        _postrun(task, request, outcome)
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
