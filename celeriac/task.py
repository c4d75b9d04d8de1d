"""``Task[P, R]``: a function made callable through the queue, with Celery's options.

As in Celery, every task is an instance of a ``Task`` subclass: ``@app.task`` makes one
from the function (on ``base=``, else the app's ``Task``, whose class ``Celery(task_cls=)``
names), and a class with a ``run`` method is one already (``app.register_task(MyTask())``).
Options are class attributes, so a base class can set them for all its tasks, and the
handlers (``before_start``, ``on_success``, ``on_failure``, ``on_retry``,
``after_return``) are methods a base class overrides; ``execution.py`` calls them.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import functools
import importlib
import inspect
import socket
import time
import types
import typing
import uuid
from collections.abc import Callable, Coroutine, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, ClassVar, Generic, ParamSpec, TypeVar

from . import _state
from ._bridge import run_sync
from .canvas import Plan, Signature, chain, chord, chunks, group, run_eager_followups, xmap, xstarmap
from .context import Request, current_request, reset_request, set_request
from .exceptions import (
    ADD_TO_CHORD_SECTION,
    ConfigurationError,
    Ignore,
    ImproperlyConfigured,
    MaxRetriesExceededError,
    NotAvailable,
    Retry,
    SerializationError,
)
from .execution import Outcome, check_can_retry, execute
from .message import FAILURE, RETRY, REVOKED, SUCCESS, ResultRecord, encode_record, now_ms
from .publish import build_message, to_epoch_ms
from .result import AsyncResult, EagerResult
from .serialization import find_unencodable, safe_text, to_wire

if TYPE_CHECKING:
    from .app import Celery
    from .backend import ResultBackend

P = ParamSpec("P")
R = TypeVar("R")

TASK_OPTIONS = frozenset({
    "name", "bind", "queue", "priority", "max_retries", "default_retry_delay", "autoretry_for",
    "dont_autoretry_for", "retry_backoff", "retry_backoff_max", "retry_jitter", "rate_limit",
    "time_limit", "soft_time_limit", "acks_late", "ignore_result", "expires", "serializer",
    "track_started", "typing", "base", "shared", "retry_kwargs", "acks_on_failure_or_timeout",
    "reject_on_worker_lost", "store_errors_even_if_ignored", "throws", "pydantic", "trail",
    "lazy", "routing_key", "result_extended", "send_events", "store_eager_result", "acks_on_failure",
    "acks_on_timeout", "resultrepr_maxsize", "abstract", "pydantic_strict", "pydantic_context",
    "pydantic_dump_kwargs",
})
# Options of the decorator only, not attributes of the task.
_DECORATOR_ONLY = frozenset({"base", "shared", "lazy", "pydantic_strict", "pydantic_context",
                             "pydantic_dump_kwargs"})

_SEND_OPTION_NAMES = ("queue", "priority", "ignore_result", "expires", "serializer",
                      "time_limit", "soft_time_limit")

#: The header naming the task(s) a replacement stands in for (``Task.replace``): a list of
#: ``{"id", "token", "chord", "group", "group_index"}``, newest first. The worker writes
#: the replacement's outcome under each id too, so the replaced task's result is its.
REPLACES_HEADER = "celeriac_replaces"
# Added to the replaced task's fencing token for the records written under its id, so they
# outrank what its own run wrote (STARTED, PROGRESS) however its deliveries were counted.
REPLACED_TOKEN_OFFSET = 1 << 20


def _default(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a method of the base ``Task`` whose override ``execution.has_custom`` looks for."""
    fn._celeriac_default = True  # type: ignore[attr-defined]
    return fn


class Task(Generic[P, R]):
    """A task: call it to run here, ``delay()`` to queue it; subclass it to share behaviour.

    The options are class attributes with Celery's defaults; ``@app.task(...)`` sets them on
    the class it makes. A class-based task defines ``run`` (and usually ``name``)::

        class Upload(app.Task):
            name = "proj.upload"
            max_retries = 5

            def run(self, path: str) -> int: ...

        upload = app.register_task(Upload())
    """

    #: The task's registered name; None on a class means "module.ClassName" when registered.
    name: str = None  # type: ignore[assignment]
    _app: Celery | None = None
    #: The body takes the task itself first (``@app.task(bind=True)``, and every ``run`` method).
    bind: bool = False
    #: The function the body is (``run`` unbound, for a class-based task).
    fun: Callable[..., Any]

    typing: bool | None = None  # None: the app's strict_typing (True)
    queue: str | None = None
    routing_key: str | None = None
    priority: int | None = None
    max_retries: int | None = 3
    default_retry_delay: float = 180
    autoretry_for: tuple[type[BaseException], ...] = ()
    dont_autoretry_for: tuple[type[BaseException], ...] = ()
    retry_kwargs: Mapping[str, Any] = {}
    retry_backoff: bool | int = False
    retry_backoff_max: int = 600
    retry_jitter: bool = True
    rate_limit: str | float | None = None
    time_limit: float | None = None
    soft_time_limit: float | None = None
    ignore_result: bool | None = None
    track_started: bool | None = None
    #: None: the app's result_extended decides whether records keep the call's arguments.
    result_extended: bool | None = None
    expires: Any = None
    serializer: str | None = None
    # Accepted, as in Celery; see docs/api.md for what each does here.
    acks_late: bool | None = None
    acks_on_failure_or_timeout: bool | None = None
    acks_on_failure: bool | None = None
    acks_on_timeout: bool | None = None
    reject_on_worker_lost: bool | None = None
    store_errors_even_if_ignored: bool | None = None
    store_eager_result: bool | None = None
    throws: tuple[type[BaseException], ...] = ()
    trail: bool = True
    send_events: bool = True
    pydantic: bool = False
    resultrepr_maxsize: int = 1024
    abstract: bool = True
    MaxRetriesExceededError: ClassVar[type[BaseException]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__
        if "run" in own and "fun" not in own:  # a class-based task: ``run(self, ...)`` is its body
            run = own["run"]
            if isinstance(run, staticmethod):
                cls.fun, cls.bind = run, False
            else:
                cls.fun, cls.bind = staticmethod(run), True
        if "name" in own and own["name"] is not None and not isinstance(own["name"], str):
            raise ConfigurationError(f"task class {cls.__qualname__}: name must be a string")

    def __init__(self, fun: Callable[..., Any] | None = None, app: Celery | None = None,
                 options: dict[str, Any] | None = None) -> None:
        """``Task()`` for a class-based task; ``Task(fun, app, options)`` wraps a function in place.

        Subclasses may define their own ``__init__`` without calling this one (as Celery's
        docs show); nothing here is needed for a task to work.
        """
        if fun is None:
            if app is not None:
                self._app = app
            return
        options = dict(options or {})
        _check_options(options, type(self), getattr(fun, "__qualname__", repr(fun)))
        bind = bool(options.pop("bind", False))
        pydantic_options = {flag: options.pop(flag) for flag in _DECORATOR_ONLY if flag in options}
        if options.get("pydantic"):
            fun = pydantic_wrapper(fun, options.get("name") or _task_name(fun, app), app,
                                   strict=bool(pydantic_options.get("pydantic_strict", False)),
                                   context=pydantic_options.get("pydantic_context"),
                                   dump_kwargs=pydantic_options.get("pydantic_dump_kwargs"))
        self._app = app
        self.fun = fun
        self.bind = bind
        self.run = functools.partial(fun, self) if bind else fun  # type: ignore[method-assign]
        self.name = options.pop("name", None) or _task_name(fun, app)
        for key, value in _option_attributes(options).items():
            setattr(self, key, value)
        _copy_function_names(self, fun)

    def __repr__(self) -> str:
        return f"<@task: {self.name} of {self.app.main or '__main__'}>"

    def __reduce__(self) -> Any:
        # Tasks travel by name, as in Celery: the receiving process looks it up.
        return (_task_by_name, (self.name,))

    @property
    def app(self) -> Celery:
        if self._app is not None:
            return self._app
        return _state.get_current_app()

    @property
    def backend(self) -> ResultBackend:
        """The app's result store, with Celery's backend methods (``app.backend``)."""
        own = self.__dict__.get("_backend")
        return own if own is not None else self.app.backend

    @backend.setter
    def backend(self, value: ResultBackend) -> None:
        self.__dict__["_backend"] = value

    @property
    def request(self) -> Request:
        """This task's running call (its own, when several tasks run at once); a stand-in outside one."""
        running = current_request()
        if running is not None and running.task == self.name:
            return running
        return Request(task=self.name, called_directly=True)

    @functools.cached_property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fun)

    @functools.cached_property
    def _signature(self) -> inspect.Signature:
        return inspect.signature(self.fun)

    @functools.cached_property
    def _plain_arity(self) -> int:
        return _plain_arity(self._signature, self.bind)

    # --- calling the function directly ------------------------------------------------

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """The body of the task: the decorated function, or a subclass's own ``run``."""
        raise NotImplementedError(f"task {self.name!r} defines no run() method")

    @_default
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        """Run the function in this process, as Celery does (a coroutine for async tasks).

        A subclass may override it to wrap every run (the worker calls it then, as Celery's does).
        """
        return self.run(*args, **kwargs)

    # --- the handlers (override in a subclass; the defaults do nothing) -----------------

    @_default
    def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
        """Called in the worker (and by ``apply()``) before the body; raising fails the task."""

    @_default
    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        """Called after the body returned ``retval``."""

    @_default
    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        """Called after the body raised ``exc`` (``einfo``: the traceback, ``execution.ExceptionInfo``)."""

    @_default
    def on_retry(self, exc: BaseException | None, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        """Called when the task will be retried, ``exc`` being what was given to ``retry()``."""

    @_default
    def after_return(self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        """Called last, after ``on_success`` or ``on_failure`` (not after a retry, Ignore or Reject)."""

    # --- sending ----------------------------------------------------------------------

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        return self.apply_async(args, kwargs)

    async def adelay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        return await self.aapply_async(args, kwargs)

    def apply_async(
        self, args: Iterable[Any] | None = None, kwargs: dict[str, Any] | None = None, **options: Any
    ) -> AsyncResult[R]:
        self._check_time_limits()
        if self.app.settings.task_always_eager:
            return self.apply(args, kwargs, **options)
        message, result = self._message(args, kwargs, options)
        run_sync(self.app.publish([message], options.get("on_duplicate", "error")))
        return result

    async def aapply_async(
        self, args: Iterable[Any] | None = None, kwargs: dict[str, Any] | None = None, **options: Any
    ) -> AsyncResult[R]:
        self._check_time_limits()
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

    def _check_time_limits(self) -> None:
        """Celery's rule: a task whose soft_time_limit passes its time_limit cannot be sent."""
        if self.soft_time_limit and self.time_limit and self.soft_time_limit > self.time_limit:
            raise ValueError("soft_time_limit must be less than or equal to time_limit")

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
        typing = self.typing if self.typing is not None else getattr(self.app, "strict_typing", True)
        if not typing:
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

    def AsyncResult(self, task_id: str, **kwargs: Any) -> AsyncResult[R]:  # Celery's name
        """The result of a call of this task by its id."""
        return AsyncResult(task_id, app=self.app, task_name=self.name, **kwargs)

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
        The task's handlers and signals run as in a worker.
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
        headers = dict(options.get("headers") or {})
        request = Request(
            id=task_id, task=self.name, args=list(args or ()), kwargs=dict(kwargs or {}),
            retries=int(options.get("retries") or 0), is_eager=True, root_id=task_id,
            headers=headers, hostname=socket.gethostname(),
            callbacks=[dict(s) for s in _as_list(options.get("link"))],
            errbacks=[dict(s) for s in _as_list(options.get("link_error"))],
            delivery_info={"is_eager": True, "queue": options.get("queue"), "priority": options.get("priority")},
            timelimit=(options.get("time_limit", self.time_limit),
                       options.get("soft_time_limit", self.soft_time_limit)),
            replaced_task_nesting=int(options.get("replaced_task_nesting")
                                      or headers.get("replaced_task_nesting") or 0),
            ignore_result=bool(options.get("ignore_result", False)),
        )
        parent = current_request()
        if parent is not None and parent.id is not None:
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
        if outcome.kind in ("success", "failure") and (request.callbacks or request.errbacks):
            run_eager_followups(app, request, outcome.value, exception, record.traceback)  # as Celery's eager trace
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
        retry = Retry(exc=exc, when=countdown, is_eager=request.is_eager)
        if args is not None or kwargs is not None:
            retry.new_args = (list(args if args is not None else request.args),  # type: ignore[attr-defined]
                              dict(kwargs if kwargs is not None else request.kwargs))
        if throw:
            raise retry
        return retry

    # --- replacing --------------------------------------------------------------------

    def replace(self, sig: Any) -> Any:
        """Replace this running task by ``sig`` (a task, chain, group or chord), as Celery's does.

        The replacement takes over this task's place: its final result becomes this task's
        result (``AsyncResult(this_id).get()`` returns it), this task's callbacks and
        errbacks move to it, the rest of a chain this task is in runs after it, and a chord
        this task is a member of counts it in this task's place. Each of its tasks sees
        ``self.request.replaced_task_nesting`` one higher. In a worker this raises
        ``Ignore`` (the body stops here: ``raise self.replace(...)`` or ``return
        self.replace(...)``); in eager mode it runs the replacement and returns its result.
        """
        request = self.request
        if isinstance(sig, dict) and not isinstance(sig, Signature):
            sig = Signature.from_dict(sig, app=self.app)
        if not isinstance(sig, Signature):
            raise TypeError(f"replace() takes a signature, not {type(sig).__name__}")
        if "chord" in sig.options:
            raise ImproperlyConfigured("A signature replacing a task must not be part of a chord")
        if isinstance(sig, chain) and not sig.tasks:
            raise ImproperlyConfigured("Cannot replace with an empty chain")
        if isinstance(sig, chunks):
            sig = sig.group()
        if isinstance(sig, group):  # a group becomes a chord, so that its result is one value: the list
            sig = chord(sig, _accumulate(self.app), app=self.app)
        final = _final_task(sig, self.app)
        for callback in request.callbacks:
            final.link(Signature.from_dict(callback, app=self.app))
        if isinstance(sig, chain):  # a chain's own callbacks run after its last step
            for callback in _as_list(sig["options"].pop("link", None)):
                final.link(callback)
        for errback in request.errbacks:
            sig.link_error(Signature.from_dict(errback, app=self.app))
        nesting = request.replaced_task_nesting + 1
        if request.id is not None and not request.is_eager:
            stands_for = [{"id": request.id, "token": request.delivery_count + REPLACED_TOKEN_OFFSET,
                           "chord": request.chord, "group": request.group, "group_index": request.group_index},
                          *request.replaces]
            _add_headers(final, {REPLACES_HEADER: stands_for})
        for leaf in _leaf_tasks(sig):
            _add_headers(leaf, {"replaced_task_nesting": nesting})
        rest = [Signature.from_dict(raw, app=self.app) for raw in reversed(request.chain)]
        for step in rest:
            _add_headers(step, {"replaced_task_nesting": nesting})
        if rest:
            sig = chain(sig, *rest, app=self.app)
        if request.id is not None and not request.is_eager:
            _fix_ids(sig, request.id)
        return self.on_replace(sig)

    def on_replace(self, sig: Signature) -> Any:
        """Send the replacement (or, in eager mode, run it and return its result).

        Override to change ``sig`` first; end with ``return super().on_replace(sig)``.
        """
        if self.request.is_eager:
            return sig.apply().get()
        app = self.app
        plan = Plan()
        # Fixed ids, remembered for a while: a replaced task that runs again (its worker
        # died before acknowledging it) sends nothing twice.
        sig.prepare(plan, (), {}, {"unique_for_s": app.settings.result_expires or 86400.0})
        run_sync(plan.asend(app, on_duplicate="ignore"))
        raise Ignore("Replaced by new task")

    def add_to_chord(self, sig: Any, lazy: bool = False) -> Any:
        """Celery's, for the Redis backend only; not available here (add the task to the header instead)."""
        raise NotAvailable("Task.add_to_chord()", "a chord's header is fixed when it is sent; put the task in "
                           "the header, or chain a second chord", ADD_TO_CHORD_SECTION)

    # --- states -----------------------------------------------------------------------

    def update_state(self, task_id: str | None = None, state: str | None = None, meta: Any = None,
                     **kwargs: Any) -> None:
        """Record a state for this task (or ``task_id``): ``self.update_state(state="PROGRESS", meta={...})``.

        ``AsyncResult.state`` then shows ``state`` and ``AsyncResult.info`` shows ``meta``
        until the task finishes. Called outside a task (``self.request.called_directly``)
        with no ``task_id``, it does nothing.
        """
        request = self.request
        if task_id is None:
            task_id = request.id
        if task_id is None:
            return
        self.backend.store_result(task_id, meta, state or "PENDING", request=request, **kwargs)

    async def aupdate_state(self, task_id: str | None = None, state: str | None = None, meta: Any = None,
                            **kwargs: Any) -> None:
        """``update_state`` for ``async def`` tasks, without blocking the event loop."""
        request = self.request
        if task_id is None:
            task_id = request.id
        if task_id is None:
            return
        await self.backend.astore_result(task_id, meta, state or "PENDING", request=request, **kwargs)

    # --- requests (Celery's test helpers) ----------------------------------------------

    def push_request(self, *args: Any, **kwargs: Any) -> None:
        """Make ``self.request`` a request with these fields until ``pop_request()`` (for tests)."""
        fields = {**(args[0] if args and isinstance(args[0], dict) else {}), **kwargs}
        known = {k: v for k, v in fields.items() if k in Request.__dataclass_fields__}
        known.setdefault("task", self.name)
        tokens = self.__dict__.setdefault("_request_tokens", [])
        tokens.append(set_request(Request(**known)))

    def pop_request(self) -> None:
        tokens = self.__dict__.get("_request_tokens") or []
        if tokens:
            reset_request(tokens.pop())

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


Task.MaxRetriesExceededError = MaxRetriesExceededError


# --- replace() helpers ---------------------------------------------------------------------


def _accumulate(app: Celery) -> Signature:
    """The chord body that makes a replacing group's result the list of its results."""
    return Signature("celery.accumulate", (), {"index": 0}, app=app)


def _final_task(sig: Signature, app: Celery) -> Signature:
    """The task whose result is ``sig``'s: a chain's last step, a chord's body (recursively).

    A group in that place becomes a chord gathering its results (``celery.accumulate``).
    """
    while True:
        if isinstance(sig, chain):
            steps = sig.tasks
            if isinstance(steps[-1], group):
                steps[-1] = chord(steps[-1], _accumulate(app), app=app)
            sig = steps[-1]
        elif isinstance(sig, chord):
            if isinstance(sig.body, group):
                sig["kwargs"]["body"] = chord(sig.body, _accumulate(app), app=app)
            sig = sig.body
        else:
            return sig


def _leaf_tasks(sig: Signature) -> Iterable[Signature]:
    """Every task signature in a canvas."""
    if isinstance(sig, (chain, group)):
        for part in sig.tasks:
            yield from _leaf_tasks(part)
    elif isinstance(sig, chord):
        yield from _leaf_tasks(sig.header)
        yield from _leaf_tasks(sig.body)
    elif isinstance(sig, chunks):
        yield from _leaf_tasks(sig.group())
    else:
        yield sig


def _add_headers(sig: Signature, headers: dict[str, Any]) -> None:
    sig["options"]["headers"] = {**(sig["options"].get("headers") or {}), **headers}


def _fix_ids(sig: Signature, replaced_id: str) -> None:
    """Give every part of a replacement without an id one derived from the replaced task's."""
    counter = iter(range(1 << 30))

    def fix(part: Signature) -> None:
        if isinstance(part, chain):
            for step in part.tasks:
                fix(step)
            return
        if not part["options"].get("task_id"):
            part["options"]["task_id"] = str(uuid.uuid5(uuid.NAMESPACE_URL,
                                                        f"celeriac:{replaced_id}:replace:{next(counter)}"))
        if isinstance(part, group):
            for member in part.tasks:
                fix(member)
        elif isinstance(part, chord):
            fix(part.header)
            fix(part.body)

    fix(sig)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _task_by_name(name: str) -> Task[Any, Any]:
    return _state.get_current_app().get_task(name)


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
    """The task ``@app.task(**options)`` (``app`` None: ``@shared_task``) makes of ``fun``, registered.

    As in Celery: a subclass of ``base=`` (else the app's ``Task``) named after the function,
    whose ``run`` is the function and whose class attributes are the options, instantiated once.
    """
    if isinstance(fun, Task):
        fun = fun.fun
    options = dict(options)
    base = options.pop("base", None)
    if base is None:
        base = app.Task if app is not None else Task
    if not (isinstance(base, type) and issubclass(base, Task)):
        raise ConfigurationError(f"base={base!r} on {getattr(fun, '__qualname__', fun)}: it must be a Task subclass")
    _check_options(options, base, getattr(fun, "__qualname__", repr(fun)))
    pydantic_options = {flag: options.pop(flag) for flag in _DECORATOR_ONLY if flag in options}
    bind = bool(options.pop("bind", False))
    name = options.pop("name", None) or _task_name(fun, app)
    if options.get("pydantic"):
        fun = pydantic_wrapper(fun, name, app, strict=bool(pydantic_options.get("pydantic_strict", False)),
                               context=pydantic_options.get("pydantic_context"),
                               dump_kwargs=pydantic_options.get("pydantic_dump_kwargs"))
    namespace: dict[str, Any] = {
        "name": name, "bind": bind, "fun": staticmethod(fun), "run": fun if bind else staticmethod(fun),
        "__module__": getattr(fun, "__module__", None) or __name__, "__doc__": fun.__doc__,
        "__qualname__": getattr(fun, "__qualname__", name), **_option_attributes(options),
    }
    if app is not None:
        namespace["_app"] = app
    cls = type(getattr(fun, "__name__", "task"), (base,), namespace)
    task: Task[Any, Any] = cls()
    _copy_function_names(task, fun)
    if app is not None:
        app.register(task)
    else:
        _state.register_shared(task)
    return task


def pydantic_wrapper(fun: Callable[..., Any], task_name: str, app: Celery | None, strict: bool = False,
                     context: dict[str, Any] | None = None,
                     dump_kwargs: dict[str, Any] | None = None) -> Callable[..., Any]:
    """``fun`` with Celery's ``pydantic=True`` behaviour (``@app.task(pydantic=True)``).

    Each argument whose parameter is annotated with a pydantic model (or ``Model | None``)
    is validated into that model (``model_validate(value, strict=pydantic_strict,
    context=...)``; the context holds ``pydantic_context`` and ``celery_app``,
    ``celery_task_name``), so callers send plain dicts; a returned model that is an
    instance of the return annotation is sent back as ``model_dump(mode="json",
    **pydantic_dump_kwargs)``. Works for ``async def`` functions too.
    """
    try:
        BaseModel: type = importlib.import_module("pydantic").BaseModel  # optional: not a dependency
    except ModuleNotFoundError as exc:
        raise ImproperlyConfigured("You need to install pydantic to use pydantic=True on a task "
                                   "(pip install pydantic)") from exc
    dump = {"mode": "json", **(dump_kwargs or {})}
    signature = inspect.signature(fun)
    try:
        hints = typing.get_type_hints(fun)
    except Exception:  # unresolvable string annotations: use them as written
        hints = {}

    def annotation(name: str, empty: Any) -> Any:
        return hints.get(name, empty)

    models = {name: model for name, param in signature.parameters.items()
              if (model := _model_of(annotation(name, param.annotation), BaseModel)) is not None}
    returned_model = _model_of(annotation("return", signature.return_annotation), BaseModel)

    def validated(args: tuple[Any, ...], kwargs: dict[str, Any]) -> inspect.BoundArguments:
        bound = signature.bind(*args, **kwargs)
        for name, value in bound.arguments.items():
            model = models.get(name)
            if model is not None and value is not None:
                bound.arguments[name] = model.model_validate(value, strict=strict, context={
                    **(context or {}), "celery_app": app or _state.get_current_app(), "celery_task_name": task_name})
        return bound

    def dumped(value: Any) -> Any:
        if returned_model is not None and isinstance(value, returned_model):
            return value.model_dump(**dump)
        return value

    if inspect.iscoroutinefunction(fun):
        @functools.wraps(fun)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            bound = validated(args, kwargs)
            return dumped(await fun(*bound.args, **bound.kwargs))

        return async_wrapper

    @functools.wraps(fun)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        bound = validated(args, kwargs)
        return dumped(fun(*bound.args, **bound.kwargs))

    return wrapper


def _model_of(annotation: Any, base: type) -> Any:
    """The pydantic model class ``annotation`` names (``Model`` or ``Model | None``), else None."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) != 1 or len(typing.get_args(annotation)) != 2:
            return None
        annotation = members[0]
    if inspect.isclass(annotation) and not isinstance(annotation, types.GenericAlias) and issubclass(annotation, base):
        return annotation
    return None


def _check_options(options: dict[str, Any], base: type, what: str) -> None:
    """Celery's options, and attributes a custom base class adds (not the methods of ``Task``)."""
    unknown = {k for k in options
               if k not in TASK_OPTIONS and (k.startswith("_") or not hasattr(base, k) or hasattr(Task, k))}
    if unknown:
        raise ConfigurationError(f"unknown task option(s) {sorted(unknown)} on {what}")


def _option_attributes(options: dict[str, Any]) -> dict[str, Any]:
    """Options as the class attributes they become (exception lists as tuples)."""
    attributes = dict(options)
    for key in ("autoretry_for", "dont_autoretry_for", "throws"):
        if key in attributes:
            attributes[key] = tuple(attributes[key] or ())
    if "retry_kwargs" in attributes:
        attributes["retry_kwargs"] = dict(attributes["retry_kwargs"] or {})
    return attributes


def _copy_function_names(task: Task[Any, Any], fun: Callable[..., Any]) -> None:
    task.__doc__ = fun.__doc__
    task.__name__ = getattr(fun, "__name__", task.name)  # type: ignore[attr-defined]
    task.__qualname__ = getattr(fun, "__qualname__", task.name)  # type: ignore[attr-defined]
    task.__module__ = getattr(fun, "__module__", None) or __name__
    task.__wrapped__ = fun  # type: ignore[attr-defined]


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


def class_task_name(cls: type, app: Celery | None) -> str:
    """The name of a class-based task that sets none: ``module.ClassName``, as in Celery."""
    module = cls.__module__ or "__main__"
    if module == "__main__" and app is not None and app.main:
        module = app.main
    return f"{module}.{cls.__name__}"


def _type_path(exc: BaseException | None) -> str | None:
    if exc is None:
        return None
    kind = type(exc)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def outcome_record(
    task_id: str, state: str, *, name: str | None, value: Any = None, exc: BaseException | None = None,
    tb: str | None = None, retries: int = 0, token: int = 0, **fields: Any,
) -> ResultRecord:
    """A result record for a task's outcome; the worker and ``apply()`` both build them here.

    The record is known to encode: a return value JSON cannot hold raises
    ``SerializationError`` naming the part at fault (the worker stores a FAILURE saying
    so), and exception text is escaped where it is not valid Unicode, so a result write
    can never fail on its content. An exception keeps its ``args`` when JSON can hold
    them, so ``get()`` re-creates it with them. Any other state keeps ``value`` as its
    meta (a custom state's ``meta``, STARTED's pid and hostname), shown by ``AsyncResult.info``.
    """
    record = ResultRecord(task_id=task_id, state=state, name=name, retries=retries,
                          fencing_token=token, date_done_ms=now_ms(), **fields)
    if state == SUCCESS or (exc is None and value is not None and state not in (FAILURE, RETRY, REVOKED)):
        where = f"the return value of {name}" if state == SUCCESS else f"the meta of state {state} of {name}"
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
        if exc is not None:
            record.exc_args = exception_args(exc)
    return record


def exception_args(exc: BaseException) -> list[Any] | None:
    """``exc.args`` in wire form, or None when JSON cannot hold them (``get()`` then uses the message)."""
    try:
        args = to_wire(list(exc.args), "the exception's arguments")
        encode_record(ResultRecord(task_id="", state=FAILURE, exc_args=args))
    except Exception:
        return None
    return args  # type: ignore[no-any-return]


def exception_text(exc: BaseException) -> str:
    """``str(exc)``, safe to store whatever the exception's ``__str__`` does."""
    try:
        return safe_text(str(exc))
    except Exception as again:
        return f"<{type(exc).__qualname__}: its message could not be read: {again!r}>"
