"""``Task[P, R]``: a function made callable through the queue, with Celery's options."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import inspect
import socket
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from . import _state
from ._bridge import run_sync
from .canvas import Signature, chunks, xmap, xstarmap
from .context import Request, current_request
from .exceptions import ConfigurationError, Retry, SerializationError
from .execution import Outcome, check_can_retry, execute
from .message import FAILURE, RETRY, SUCCESS, ResultRecord, encode_record, now_ms
from .publish import build_message, to_epoch_ms
from .result import AsyncResult, EagerResult
from .serialization import find_unencodable, safe_text, to_wire

if TYPE_CHECKING:
    from .app import Celery

P = ParamSpec("P")
R = TypeVar("R")

TASK_OPTIONS = frozenset({
    "name", "bind", "queue", "priority", "max_retries", "default_retry_delay", "autoretry_for",
    "dont_autoretry_for", "retry_backoff", "retry_backoff_max", "retry_jitter", "rate_limit",
    "time_limit", "soft_time_limit", "acks_late", "ignore_result", "expires", "serializer",
    "track_started", "typing", "base", "shared", "retry_kwargs", "acks_on_failure_or_timeout",
    "reject_on_worker_lost", "store_errors_even_if_ignored", "throws", "pydantic", "trail",
    "lazy", "routing_key", "result_extended",
})

_SEND_OPTION_NAMES = ("queue", "priority", "ignore_result", "expires", "serializer",
                      "time_limit", "soft_time_limit")


class Task(Generic[P, R]):
    """A registered task. Call it to run the function here; ``delay()`` to queue it."""

    def __init__(self, fun: Callable[..., Any], app: Celery | None, options: dict[str, Any]) -> None:
        unknown = set(options) - TASK_OPTIONS
        if unknown:
            raise ConfigurationError(f"unknown task option(s) {sorted(unknown)} on {fun.__qualname__}")
        self.fun = fun
        self._app = app
        self.name: str = options.get("name") or _task_name(fun, app)
        self.bind: bool = bool(options.get("bind", False))
        self.is_async = inspect.iscoroutinefunction(fun)
        self.queue: str | None = options.get("queue")
        self.priority: int | None = options.get("priority")
        self.max_retries: int | None = options.get("max_retries", 3)
        self.default_retry_delay: float = options.get("default_retry_delay", 180)
        self.autoretry_for: tuple[type[BaseException], ...] = tuple(options.get("autoretry_for", ()))
        self.dont_autoretry_for: tuple[type[BaseException], ...] = tuple(options.get("dont_autoretry_for", ()))
        retry_kwargs = options.get("retry_kwargs") or {}
        if "max_retries" in retry_kwargs:
            self.max_retries = retry_kwargs["max_retries"]
        if "countdown" in retry_kwargs:
            self.default_retry_delay = retry_kwargs["countdown"]
        self.retry_backoff: bool | int = options.get("retry_backoff", False)
        self.retry_backoff_max: int = options.get("retry_backoff_max", 600)
        self.retry_jitter: bool = options.get("retry_jitter", True)
        self.rate_limit: str | None = options.get("rate_limit")
        self.time_limit: float | None = options.get("time_limit")
        self.soft_time_limit: float | None = options.get("soft_time_limit")
        self.acks_late: bool | None = options.get("acks_late")
        self.ignore_result: bool | None = options.get("ignore_result")
        self.expires: Any = options.get("expires")
        self.serializer: str | None = options.get("serializer")
        self.track_started: bool | None = options.get("track_started")
        # None: the app's result_extended decides whether records keep the call's arguments.
        self.result_extended: bool | None = options.get("result_extended")
        self.typing: bool = options.get("typing", True)
        self.__doc__ = fun.__doc__
        self.__name__ = getattr(fun, "__name__", self.name)
        self.__qualname__ = getattr(fun, "__qualname__", self.name)
        self.__module__ = getattr(fun, "__module__", __name__)
        self.__wrapped__ = fun
        self._signature = inspect.signature(fun)
        self._plain_arity = _plain_arity(self._signature, self.bind)

    def __repr__(self) -> str:
        return f"<@task: {self.name} of {self.app.main or '__main__'}>"

    @property
    def app(self) -> Celery:
        if self._app is not None:
            return self._app
        return _state.get_current_app()

    @property
    def request(self) -> Request:
        return current_request() or Request(task=self.name)

    # --- calling the function directly ------------------------------------------------

    def run(self, *args: Any, **kwargs: Any) -> Any:
        return self.fun(self, *args, **kwargs) if self.bind else self.fun(*args, **kwargs)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        """Run the function in this process, as Celery does (a coroutine for async tasks)."""
        return self.run(*args, **kwargs)

    # --- sending ----------------------------------------------------------------------

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        return self.apply_async(args, kwargs)

    async def adelay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        return await self.aapply_async(args, kwargs)

    def apply_async(
        self, args: Iterable[Any] | None = None, kwargs: dict[str, Any] | None = None, **options: Any
    ) -> AsyncResult[R]:
        if self.app.settings.task_always_eager:
            return self.apply(args, kwargs, **options)
        message, result = self._message(args, kwargs, options)
        run_sync(self.app.publish([message], options.get("on_duplicate", "error")))
        return result

    async def aapply_async(
        self, args: Iterable[Any] | None = None, kwargs: dict[str, Any] | None = None, **options: Any
    ) -> AsyncResult[R]:
        if self.app.settings.task_always_eager:
            # On a thread of its own, outside this loop (a sync body may use Django's ORM),
            # in this context (self.request of a calling task becomes its parent).
            call = contextvars.copy_context()
            return await asyncio.get_running_loop().run_in_executor(
                None, lambda: call.run(self.apply, args, kwargs, **options)
            )
        message, result = self._message(args, kwargs, options)
        await self.app.publish([message], options.get("on_duplicate", "error"))
        return result

    def delay_on_commit(self, *args: P.args, **kwargs: P.kwargs) -> None:
        """``delay()`` once Django's current transaction commits; nothing if it rolls back."""
        self.apply_async_on_commit(args, kwargs)

    def apply_async_on_commit(
        self, args: Iterable[Any] | None = None, kwargs: dict[str, Any] | None = None, **options: Any
    ) -> None:
        """``apply_async()`` once Django's current transaction commits (at once outside one)."""
        from django.db import transaction  # Django is optional

        args, kwargs = list(args or ()), dict(kwargs or {})
        self._check_arguments(args, kwargs)  # fail in the caller, not in a commit hook
        transaction.on_commit(lambda: self.apply_async(args, kwargs, **options))

    def _message(self, args: Iterable[Any] | None, kwargs: dict[str, Any] | None,
                 options: dict[str, Any]) -> tuple[Any, AsyncResult[R]]:
        args, kwargs = list(args or ()), dict(kwargs or {})
        self._check_arguments(args, kwargs)
        message, result = build_message(self.app, self.name, args, kwargs, options, self.send_options())
        return message, result

    def send_options(self) -> dict[str, Any]:
        """This task's own defaults for sending (queue, priority, ...)."""
        return {k: getattr(self, k) for k in _SEND_OPTION_NAMES if getattr(self, k) is not None}

    def _check_arguments(self, args: list[Any], kwargs: dict[str, Any]) -> None:
        """Fail at ``delay()`` for arguments the function cannot take, as Celery's typing does."""
        if not self.typing:
            return
        if not kwargs and len(args) == self._plain_arity:
            return  # the common call: exactly the function's plain positional parameters
        try:
            if self.bind:
                self._signature.bind(None, *args, **kwargs)
            else:
                self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.name}() called with wrong arguments: {exc}") from None

    # --- running here -----------------------------------------------------------------

    def apply(
        self, args: Iterable[Any] | None = None, kwargs: dict[str, Any] | None = None, **options: Any
    ) -> EagerResult[R]:
        """Run the task here and now, blocking; retries run at once, as in Celery.

        A sync body runs in the calling thread, outside any event loop (so Django's ORM
        works in it, inside the caller's transaction); an async body runs on an event loop.
        ``throw`` (default: ``task_eager_propagates``) re-raises a failure's exception; a
        ``KeyboardInterrupt`` from the body is always re-raised: here it is the caller's.
        With ``task_store_eager_result`` the outcome is also written to the result store.
        """
        return self.apply_on(self.app, args, kwargs, **options)

    def apply_on(
        self, app: Celery, args: Iterable[Any] | None = None, kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> EagerResult[R]:
        """``apply()`` under ``app``'s settings and result store, whichever app is current.

        For callers that hold the app a shared task is sent through (Django's Tasks backend).
        """
        task_id = options.get("task_id") or str(uuid.uuid4())
        request = Request(
            id=task_id, task=self.name, args=list(args or ()), kwargs=dict(kwargs or {}),
            retries=int(options.get("retries") or 0), is_eager=True, root_id=task_id,
            headers=dict(options.get("headers") or {}), hostname=socket.gethostname(),
        )
        parent = current_request()
        if parent is not None:
            request.parent_id, request.root_id = parent.id, parent.root_id or parent.id
        while True:
            started_ms = now_ms()
            outcome = self._run_eagerly(request)
            if outcome.kind != "retry":
                break
            request.retries += 1
            if outcome.retry_args is not None:
                request.args, request.kwargs = outcome.retry_args
        if isinstance(outcome.exc, KeyboardInterrupt):
            raise outcome.exc
        record, exception = self._eager_record(app, request, outcome, started_ms)
        throw = options.get("throw")
        if exception is not None and (app.settings.task_eager_propagates if throw is None else throw):
            raise exception
        if self._stores_eager_result(app, options):
            run_sync(_astore_eager(app, record))
        result: EagerResult[R] = EagerResult(task_id, record, app=app, task_name=self.name)
        result._exception = exception
        return result

    def _eager_record(self, app: Celery, request: Request, outcome: Outcome,
                      started_ms: int) -> tuple[ResultRecord, BaseException | None]:
        """The record of an eager run, and the exception it failed with (None on success)."""
        extended: dict[str, Any] = {}
        if self.result_extended if self.result_extended is not None else app.settings.result_extended:
            extended = {"headers": request.headers or None}
            # Eager calls take any object; a record keeps only arguments JSON can hold.
            with contextlib.suppress(SerializationError):
                extended.update(args=to_wire(request.args), kwargs=to_wire(request.kwargs))
        state = SUCCESS if outcome.kind in ("success", "ignore") else FAILURE
        assert request.id is not None
        try:
            record = outcome_record(request.id, state, name=self.name, value=outcome.value, exc=outcome.exc,
                                    tb=outcome.traceback, retries=request.retries, worker=request.hostname,
                                    date_started_ms=started_ms, **extended)
        except SerializationError as exc:  # a return value JSON cannot hold fails the task, as on a worker
            return outcome_record(request.id, FAILURE, name=self.name, exc=exc, retries=request.retries,
                                  worker=request.hostname, date_started_ms=started_ms, **extended), exc
        return record, outcome.exc if state == FAILURE else None

    def _stores_eager_result(self, app: Celery, options: dict[str, Any]) -> bool:
        conf = app.settings
        if not conf.task_store_eager_result:
            return False
        ignore = options.get("ignore_result")
        if ignore is None:
            ignore = self.ignore_result if self.ignore_result is not None else conf.task_ignore_result
        return not ignore

    def _run_eagerly(self, request: Request) -> Outcome:
        from .worker.pool import INLINE

        coro = execute(self, request, INLINE, None, None)
        if not self.is_async:
            return _run_without_loop(coro)
        if not _loop_is_running():
            # Outside any except block: the task's own exceptions must carry no context.
            return run_sync(coro)  # this thread's own loop, in this context
        # A loop runs here already (apply() from async code): run it on another thread's
        # loop, in this thread's context, so a nested apply() still sees its parent.
        call = contextvars.copy_context()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="celeriac-eager") as pool:
            return pool.submit(call.run, run_sync, coro).result()

    # --- retrying ---------------------------------------------------------------------

    def retry(
        self, args: Iterable[Any] | None = None, kwargs: dict[str, Any] | None = None,
        exc: BaseException | None = None, throw: bool = True, eta: Any = None,
        countdown: float | None = None, max_retries: int | None = None, **options: Any,
    ) -> Retry:
        """Ask for another attempt of the running task; raises ``Retry`` (keep the ``raise``)."""
        request = self.request
        check_can_retry(self, request, exc, max_retries)
        if request.is_eager:
            countdown = 0
        elif countdown is None and eta is not None:
            when_ms = to_epoch_ms(eta) if isinstance(eta, dt.datetime) else int(float(eta) * 1000)
            countdown = max(0.0, (when_ms - time.time() * 1000) / 1000)
        elif countdown is None:
            countdown = float(self.default_retry_delay)
        retry = Retry(exc=exc, when=countdown)
        if args is not None or kwargs is not None:
            retry.new_args = (list(args if args is not None else request.args),  # type: ignore[attr-defined]
                              dict(kwargs if kwargs is not None else request.kwargs))
        if throw:
            raise retry
        return retry

    # --- canvas -----------------------------------------------------------------------

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        return Signature(self.name, args, kwargs, app=self.app)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        return Signature(self.name, args, kwargs, immutable=True, app=self.app)

    def signature(self, args: Iterable[Any] | None = None, kwargs: dict[str, Any] | None = None,
                  *starargs: Any, **options: Any) -> Signature:
        immutable = bool(options.pop("immutable", False))
        extra = options.pop("options", None) or {}
        return Signature(self.name, tuple(args or ()), dict(kwargs or {}), {**extra, **options},
                         immutable=immutable, app=self.app)

    subtask = signature

    def map(self, it: Iterable[Any]) -> Signature:
        return xmap(self.s(), it, app=self.app)

    def starmap(self, it: Iterable[Any]) -> Signature:
        return xstarmap(self.s(), it, app=self.app)

    def chunks(self, it: Iterable[Any], n: int) -> Signature:
        return chunks(self.s(), it, n, app=self.app)


async def _astore_eager(app: Celery, record: ResultRecord) -> None:
    store = await app.result_store()
    await store.store([record])


def _loop_is_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _run_without_loop(coro: Coroutine[Any, Any, Outcome]) -> Outcome:
    """Drive ``execute()`` of a sync task to its end in this thread, with no event loop.

    With the inline pool, ``execute()`` calls a sync body directly and never
    suspends, so one ``send()`` finishes it. Were it ever to suspend, that is a bug here,
    said loudly rather than hung on.
    """
    try:
        coro.send(None)
    except StopIteration as done:
        outcome: Outcome = done.value
        return outcome
    coro.close()
    raise RuntimeError("execute() of a sync task suspended in eager mode; it must run straight through")


def _plain_arity(signature: inspect.Signature, bind: bool) -> int:
    """How many positional arguments the function takes when every parameter is a plain,
    required positional one (then such a call needs no binding check); else -1."""
    params = list(signature.parameters.values())[1 if bind else 0:]
    plain = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if all(p.kind in plain and p.default is inspect.Parameter.empty for p in params):
        return len(params)
    return -1


def make_task(fun: Callable[..., Any], app: Celery | None, options: dict[str, Any]) -> Task[Any, Any]:
    if isinstance(fun, Task):
        fun = fun.fun
    task: Task[Any, Any] = Task(fun, app, options)
    if app is not None:
        app.register(task)
    else:
        _state.register_shared(task)
    return task


def shared_task(fun: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """A task usable by any app (it binds to the current one when called)."""
    if fun is not None:
        return make_task(fun, None, options)
    return lambda f: make_task(f, None, options)


def _task_name(fun: Callable[..., Any], app: Celery | None) -> str:
    module = getattr(fun, "__module__", None) or "__main__"
    if module == "__main__" and app is not None and app.main:
        module = app.main
    return f"{module}.{fun.__qualname__}"


def _type_path(exc: BaseException | None) -> str | None:
    if exc is None:
        return None
    kind = type(exc)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def outcome_record(
    task_id: str, state: str, *, name: str, value: Any = None, exc: BaseException | None = None,
    tb: str | None = None, retries: int = 0, token: int = 0, **fields: Any,
) -> ResultRecord:
    """A result record for a task's outcome; the worker and ``apply()`` both build them here.

    The record is known to encode: a return value JSON cannot hold raises
    ``SerializationError`` naming the part at fault (the worker stores a FAILURE saying
    so), and exception text is escaped where it is not valid Unicode, so a result write
    can never fail on its content.
    """
    record = ResultRecord(task_id=task_id, state=state, name=name, retries=retries,
                          fencing_token=token, date_done_ms=now_ms(), **fields)
    if state == SUCCESS:
        where = f"the return value of {name}"
        record.result = to_wire(value, where)
        try:
            encode_record(record)
        except (UnicodeEncodeError, TypeError, ValueError, RecursionError) as encode_error:
            reason = find_unencodable(value, where) or f"{where} cannot be encoded: {encode_error}"
            raise SerializationError(reason) from None
    elif state in (FAILURE, RETRY) or exc is not None:
        record.exc_type = _type_path(exc)
        record.exc_message = exception_text(exc) if exc is not None else None
        record.traceback = safe_text(tb) if tb else tb
    return record


def exception_text(exc: BaseException) -> str:
    """``str(exc)``, safe to store whatever the exception's ``__str__`` does."""
    try:
        return safe_text(str(exc))
    except Exception as again:
        return f"<{type(exc).__qualname__}: its message could not be read: {again!r}>"
