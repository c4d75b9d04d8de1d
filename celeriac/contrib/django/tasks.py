"""A backend for Django's Tasks framework: tasks written with ``django.tasks`` run on celeriac.

::

    TASKS = {
        "default": {
            "BACKEND": "celeriac.contrib.django.tasks.CeleriacBackend",
            "QUEUES": ["default", "emails"],     # Django's check of queue_name, as usual
            "OPTIONS": {
                "app": "proj.celery:app",          # default: CELERIAC_APP, else <project>.celery,
                                                   # else an app made from the CELERY_* settings
                "queue_map": {"emails": "mail"},   # Django queue -> celeriac queue (default: same name;
                                                   # "default" -> the app's task_default_queue)
                "track_started": True,             # store RUNNING when a worker starts one (default)
                "task_always_eager": False,        # run in the caller (default: the app's setting)
            },
        }
    }

Tasks defined with ``@task`` and sent with ``.enqueue()`` / ``.aenqueue()`` go through the
app's broker and run on ``manage.py celeriac worker``; ``get_result()`` /
``aget_result()`` read the app's result store. Django 6.0 ships the framework as
``django.tasks``; Django 5.2 has the ``django-tasks`` backport, with the same API under
``django_tasks``. Which one is used follows Django's version. Without either, this module
still imports (the app's autodiscovery imports it), and using the backend says what to
install.

Mapping onto celeriac:

- priority: Django's -100..100 onto celeriac's 0..9 (9 runs first in both), linearly,
  rounding half up: ``(p + 100) * 9 / 200``. So -100 -> 0, -50 -> 2, 0 (Django's default)
  -> 5, 50 -> 7, 100 -> 9. Django's default therefore runs ahead of plain celeriac tasks
  at celeriac's default 0 on the same queue.
- ``run_after`` -> ``eta``: the message waits in the broker's schedule, without a lease.
- ``queue_name``: the celeriac queue of the same name; Django's ``"default"`` is the
  app's ``task_default_queue`` (``celery``), so a plain ``manage.py celeriac worker``
  consumes it. ``queue_map`` overrides either.
- status: PENDING/RECEIVED/RETRY -> READY, STARTED -> RUNNING, SUCCESS -> SUCCESSFUL,
  FAILURE/REVOKED -> FAILED; a failure's ``errors`` hold the exception's path and traceback.
- ids are celeriac task ids, so ``app.AsyncResult(result.id)`` works on them too.

What a result holds: the message carries the Django task's own options and the time it
was enqueued in its ``django_task`` header, and the celeriac task behind each Django task
keeps its call (``result_extended``), so the store's record gives ``get_result()`` the
task as enqueued (priority, queue, ``run_after``, backend), its arguments, when it was
enqueued, when the worker started it (``started_at`` and ``last_attempted_at``: the start
of the latest attempt), when it finished, the worker and the error with its traceback.
``refresh()`` replaces a result's fields with those. Times are whole milliseconds.

Eager mode (the app's ``task_always_eager``, or the backend's ``task_always_eager``
option) behaves as Django's ImmediateBackend: ``enqueue()`` sends ``task_enqueued``, runs
the task in the caller (a sync one in the calling thread, outside any event loop, so it
sees the caller's database transaction), sends ``task_started`` and ``task_finished``,
and returns the finished result. A ``KeyboardInterrupt`` from the task reaches the
caller. ``get_result()`` then finds the result only with ``task_store_eager_result``.
"""

from __future__ import annotations

import contextvars
import dataclasses
import datetime as dt
import inspect
import traceback
import uuid
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import django
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import close_old_connections
from django.utils import timezone
from django.utils.module_loading import import_string

from ..._bridge import run_sync
from ...context import current_request
from ...loading import find_app
from ...message import (
    FAILURE,
    PENDING,
    READY_STATES,
    RETRY,
    REVOKED,
    STARTED,
    SUCCESS,
    ResultRecord,
    now_ms,
)
from ...publish import build_message
from ...serialization import from_wire, to_wire
from ...task import make_task
from .discovery import load_project_app

DJANGO_MIN_PRIORITY = -100
DJANGO_MAX_PRIORITY = 100
CELERIAC_MAX_PRIORITY = 9
# The message header (and, through result_extended, the record field) holding what a
# result needs and celeriac's own fields do not: the Django task's options, enqueue time.
DJANGO_TASK_HEADER = "django_task"


def _load_framework() -> SimpleNamespace | None:
    """Django 6's ``django.tasks``; on older Django the ``django_tasks`` backport; else None."""
    # Imported here: which module holds the framework depends on Django's version, and the
    # backport is optional.
    if django.VERSION >= (6, 0):
        from django.tasks import DEFAULT_TASK_QUEUE_NAME, base, exceptions, signals
        from django.tasks.backends.base import BaseTaskBackend
        from django.utils.json import normalize_json

        return SimpleNamespace(
            BaseTaskBackend=BaseTaskBackend, Task=base.Task, TaskResult=base.TaskResult,
            TaskResultStatus=base.TaskResultStatus, TaskContext=base.TaskContext, TaskError=base.TaskError,
            DoesNotExist=exceptions.TaskResultDoesNotExist, signals=signals, normalize_json=normalize_json,
            DEFAULT_QUEUE=DEFAULT_TASK_QUEUE_NAME, source="django.tasks",
        )
    try:
        from django_tasks import DEFAULT_TASK_QUEUE_NAME as BACKPORT_DEFAULT_QUEUE
        from django_tasks import base as backport_base
        from django_tasks import exceptions as backport_exceptions
        from django_tasks import signals as backport_signals
        from django_tasks.backends.base import BaseTaskBackend as BackportBaseTaskBackend
        from django_tasks.utils import normalize_json as backport_normalize_json
    except ImportError:
        return None
    return SimpleNamespace(
        BaseTaskBackend=BackportBaseTaskBackend, Task=backport_base.Task, TaskResult=backport_base.TaskResult,
        TaskResultStatus=backport_base.TaskResultStatus, TaskContext=backport_base.TaskContext,
        TaskError=backport_base.TaskError, DoesNotExist=backport_exceptions.TaskResultDoesNotExist,
        signals=backport_signals, normalize_json=backport_normalize_json,
        DEFAULT_QUEUE=BACKPORT_DEFAULT_QUEUE, source="django_tasks",
    )


_api: Any = _load_framework()  # a namespace of the framework's names, or None
_BackendBase: Any = _api.BaseTaskBackend if _api is not None else object
_TaskBase: Any = _api.Task if _api is not None else object

_NO_FRAMEWORK = (
    "celeriac.contrib.django.tasks.CeleriacBackend needs Django's Tasks framework: Django 6.0 or "
    "later, or on Django 5.2 the backport: pip install django-tasks"
)

# The TaskResult an eager enqueue() returns, while its task runs in the caller: the run
# updates that very object, as Django's ImmediateBackend does.
_eager_result: contextvars.ContextVar[Any] = contextvars.ContextVar("celeriac_django_eager_result", default=None)


def celeriac_priority(django_priority: int) -> int:
    """Django's -100..100 onto celeriac's 0..9, linearly, rounding half up (0 -> 5)."""
    if not DJANGO_MIN_PRIORITY <= django_priority <= DJANGO_MAX_PRIORITY:
        raise ValueError(f"priority {django_priority} is outside Django's range -100..100")
    span = DJANGO_MAX_PRIORITY - DJANGO_MIN_PRIORITY
    return ((django_priority - DJANGO_MIN_PRIORITY) * CELERIAC_MAX_PRIORITY + span // 2) // span


def django_status(state: str) -> Any:
    """The ``TaskResultStatus`` for a celeriac state."""
    assert _api is not None, _NO_FRAMEWORK
    status = _api.TaskResultStatus
    if state == STARTED:
        return status.RUNNING
    if state == SUCCESS:
        return status.SUCCESSFUL
    if state in (FAILURE, REVOKED):
        return status.FAILED
    return status.READY  # PENDING, RECEIVED, RETRY: waiting to run (again)


class CeleriacTask(_TaskBase):  # type: ignore[misc]  # the framework's Task: typed only on some versions
    """Django's ``Task``, registered as a celeriac task when it is created.

    Design choice: one celeriac task per Django task, named by the function's module path,
    rather than one generic ``run_django_task(path, args, kwargs)``. Result records then
    carry the Django task's path as their name, which is what lets ``get_result()``
    rebuild a ``TaskResult`` (it needs the ``Task``) from any process; logs, the admin,
    the dashboard and ``task_routes`` patterns show the real task instead of one generic
    name for all; and a worker only runs functions it imported and registered, never an
    arbitrary path named in a message. The price is Celery's usual one: the worker must
    import the module that defines a task (``tasks.py`` of an installed app is
    autodiscovered; list others in ``CELERY_IMPORTS``), or the message is dead-lettered
    saying so. Registration happens here, when ``@task`` builds the ``Task`` (the
    decorator asks the backend for its ``task_class``), and again on enqueue for a task
    moved here with ``.using(backend=...)``; both are idempotent.
    """

    __slots__ = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        register(self)


# celeriac task per Django task path; the celeriac tasks are shared (bound to the app that
# sends or runs them), so registering at import needs no app yet.
_registered: dict[str, Any] = {}


def register(django_task: Any) -> Any:
    """The celeriac task that runs ``django_task`` (created and registered on first use)."""
    path = django_task.module_path
    found = _registered.get(path)
    if found is not None and found.fun.django_func is django_task.func:
        return found
    options = django_task.get_backend().options if hasattr(django_task, "get_backend") else {}
    celeriac_task = make_task(_runner(django_task), None, {
        "name": path,
        "typing": False,  # Django checks nothing at enqueue; a context parameter would not bind
        "track_started": bool(options.get("track_started", True)),
        # The framework promises a result with the call's arguments for every task.
        "ignore_result": False,
        "result_extended": True,
    })
    _registered[path] = celeriac_task
    return celeriac_task


def _runner(django_task: Any) -> Callable[..., Any]:
    """The function a worker (or an eager enqueue) calls: Django's, with its context and signals."""
    func = django_task.func

    if _is_coroutine_function(func):

        async def run_async(*args: Any, **kwargs: Any) -> Any:
            task_result = _start_attempt(django_task, args, kwargs)
            try:
                value = await func(*_call_args(django_task, task_result, args), **kwargs)
            except BaseException as exc:
                _finish_failed(task_result, exc)
                raise
            return _finish_successful(task_result, value)

        run_async.django_func = func  # type: ignore[attr-defined]
        return run_async

    def run_sync_task(*args: Any, **kwargs: Any) -> Any:
        in_worker = not _is_eager_run()
        if in_worker:
            _close_old_connections()
        try:
            task_result = _start_attempt(django_task, args, kwargs)
            try:
                value = func(*_call_args(django_task, task_result, args), **kwargs)
            except BaseException as exc:
                _finish_failed(task_result, exc)
                raise
            return _finish_successful(task_result, value)
        finally:
            if in_worker:
                _close_old_connections()

    run_sync_task.django_func = func  # type: ignore[attr-defined]
    return run_sync_task


def _is_coroutine_function(func: Any) -> bool:
    return inspect.iscoroutinefunction(func)


def _is_eager_run() -> bool:
    request = current_request()
    return request is not None and request.is_eager


def _close_old_connections() -> None:
    """A worker thread is like a request thread: drop connections past CONN_MAX_AGE or broken
    by the server, before and after, as Django does around requests. Never in an eager run:
    the connection is the caller's, perhaps inside its transaction."""
    close_old_connections()


def _call_args(django_task: Any, task_result: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
    return (_api.TaskContext(task_result=task_result), *args) if django_task.takes_context else args


def _start_attempt(django_task: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The ``TaskResult`` this run updates, marked RUNNING; sends ``task_started``."""
    request = current_request()
    task_result = _eager_result.get()
    if task_result is None or request is None or task_result.id != request.id:
        task_result = _result_for_request(django_task, args, kwargs)
    now = _now()
    object.__setattr__(task_result, "status", _api.TaskResultStatus.RUNNING)
    if task_result.started_at is None:  # an eager retry keeps the first start
        object.__setattr__(task_result, "started_at", now)
    object.__setattr__(task_result, "last_attempted_at", now)
    task_result.worker_ids.append(_worker_id())
    _send_signal(CeleriacBackend, "task_started", task_result)
    return task_result


def _result_for_request(django_task: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The result a worker's run of the current message reports, from the message's header."""
    request = current_request()
    header = _header_of(request.headers if request else None)
    return _api.TaskResult(
        task=_task_as_enqueued(django_task, header), id=(request.id if request else None) or str(uuid.uuid4()),
        status=_api.TaskResultStatus.READY, enqueued_at=_from_ms(header.get("enqueued_at_ms")),
        started_at=None, finished_at=None, last_attempted_at=None, args=list(args), kwargs=dict(kwargs),
        backend=header.get("backend") or django_task.backend, errors=[],
        worker_ids=[_worker_id()] * (request.retries if request else 0),
    )


def _worker_id() -> str:
    request = current_request()
    return (request.hostname if request else None) or "celeriac"


def _finish_successful(task_result: Any, value: Any) -> Any:
    """Mark ``task_result`` SUCCESSFUL, send ``task_finished``; return the value as JSON.

    A value JSON cannot hold fails the task with the framework's ``TypeError`` (or
    ``ValueError``), after ``task_finished`` says FAILED, as every backend does.
    """
    try:
        value = _api.normalize_json(value)
    except Exception as exc:
        _finish_failed(task_result, exc)  # in this except block: the log shows its traceback
        raise
    object.__setattr__(task_result, "_return_value", value)
    object.__setattr__(task_result, "finished_at", _now())
    object.__setattr__(task_result, "status", _api.TaskResultStatus.SUCCESSFUL)
    _send_signal(CeleriacBackend, "task_finished", task_result)
    return value


def _finish_failed(task_result: Any, exc: BaseException) -> None:
    """Mark ``task_result`` FAILED, send ``task_finished``; called in the ``except`` block."""
    if isinstance(exc, KeyboardInterrupt) and _is_eager_run():
        return  # the caller's own interrupt: it stops the caller, as with ImmediateBackend
    object.__setattr__(task_result, "finished_at", _now())
    task_result.errors.append(_api.TaskError(exception_class_path=_exception_path(type(exc)),
                                             traceback=_format(exc)))
    object.__setattr__(task_result, "status", _api.TaskResultStatus.FAILED)
    _send_signal(CeleriacBackend, "task_finished", task_result)


def _send_signal(sender: type, name: str, task_result: Any) -> None:
    getattr(_api.signals, name).send(sender=sender, task_result=task_result)


def _exception_path(kind: type[BaseException]) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"


def _format(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


class CeleriacBackend(_BackendBase):  # type: ignore[misc]
    """Runs ``django.tasks`` tasks on celeriac workers; see the module's docstring."""

    task_class = CeleriacTask
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        if _api is None:
            raise ImproperlyConfigured(_NO_FRAMEWORK)
        super().__init__(alias, params)
        self._app: Any = None

    # --- the app --------------------------------------------------------------------

    @property
    def app(self) -> Any:
        """OPTIONS["app"], else the project's app (CELERIAC_APP, <project>.celery, or one from the settings)."""
        if self._app is None:
            path = self.options.get("app")
            self._app = find_app(path) if path else load_project_app(required=False)
        return self._app

    @property
    def is_eager(self) -> bool:
        """Whether ``enqueue()`` runs the task in the caller: OPTIONS, else the app's setting."""
        option = self.options.get("task_always_eager")
        return bool(self.app.settings.task_always_eager if option is None else option)

    def celeriac_queue(self, queue_name: str) -> str:
        queue_map: dict[str, str] = self.options.get("queue_map") or {}
        if queue_name in queue_map:
            return queue_map[queue_name]
        if queue_name == _api.DEFAULT_QUEUE:
            return str(self.app.settings.task_default_queue)
        return queue_name

    # --- enqueueing -----------------------------------------------------------------

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        self.validate_task(task)
        task_result, header = self._new_result(task, args, kwargs)
        if self.is_eager:
            return self._run_here(task, task_result, header)
        run_sync(self._asend(task, task_result, header))
        _send_signal(type(self), "task_enqueued", task_result)
        return task_result

    async def aenqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        if self.is_eager:
            # On Django's thread for sync code, as the framework's own aenqueue() does: a
            # sync task body may use the ORM.
            return await sync_to_async(self.enqueue, thread_sensitive=True)(task, args, kwargs)
        self.validate_task(task)
        task_result, header = self._new_result(task, args, kwargs)
        await self._asend(task, task_result, header)
        _send_signal(type(self), "task_enqueued", task_result)
        return task_result

    def _new_result(self, task: Any, args: Any, kwargs: Any) -> tuple[Any, dict[str, Any]]:
        """The READY result ``enqueue()`` returns, and the header that lets a store rebuild it."""
        enqueued_ms = now_ms()  # whole milliseconds, as every time read back from a record
        # Built first: TaskResult checks the arguments are JSON, as every backend does.
        task_result = _api.TaskResult(
            task=task, id=str(uuid.uuid4()), status=_api.TaskResultStatus.READY,
            enqueued_at=_from_ms(enqueued_ms), started_at=None, finished_at=None, last_attempted_at=None,
            args=list(args), kwargs=dict(kwargs), backend=self.alias, errors=[], worker_ids=[],
        )
        header: dict[str, Any] = {"backend": self.alias, "priority": task.priority, "queue_name": task.queue_name,
                                  "enqueued_at_ms": enqueued_ms}
        if task.run_after is not None:
            header["run_after"] = task.run_after.isoformat()
        return task_result, header

    async def _asend(self, task: Any, task_result: Any, header: dict[str, Any]) -> None:
        celeriac_task = register(task)
        app = self.app
        options: dict[str, Any] = {
            "task_id": task_result.id, "queue": self.celeriac_queue(task.queue_name),
            "priority": celeriac_priority(task.priority), "headers": {DJANGO_TASK_HEADER: header},
        }
        if task.run_after is not None:
            options["eta"] = _aware(task.run_after)
        clients = await app.clients()
        if clients.store is not None:
            # A PENDING record naming the Django task, written before the message exists,
            # so get_result() finds the task, as enqueued, before a worker starts it; its
            # token 0 loses to any record a run writes.
            await clients.store.store([ResultRecord(
                task_id=task_result.id, state=PENDING, name=task.module_path, fencing_token=0,
                args=to_wire(task_result.args), kwargs=to_wire(task_result.kwargs),
                headers={DJANGO_TASK_HEADER: header},
            )])
        message, _ = build_message(app, celeriac_task.name, task_result.args, task_result.kwargs, options,
                                   celeriac_task.send_options())
        await app.publish([message])

    def _run_here(self, task: Any, task_result: Any, header: dict[str, Any]) -> Any:
        """Eager mode: enqueued, run in the caller, finished; the framework's signals in that order."""
        celeriac_task = register(task)
        _send_signal(type(self), "task_enqueued", task_result)
        token = _eager_result.set(task_result)
        try:
            # throw=False: a failure is the result's, as with ImmediateBackend, whatever
            # task_eager_propagates says; a KeyboardInterrupt still reaches the caller.
            # Under this backend's app (a shared task's app is whichever was made last).
            celeriac_task.apply_on(self.app, task_result.args, task_result.kwargs, task_id=task_result.id,
                                   headers={DJANGO_TASK_HEADER: header}, throw=False)
        finally:
            _eager_result.reset(token)
        return task_result

    # --- results --------------------------------------------------------------------

    def get_result(self, result_id: str) -> Any:
        return self._to_task_result(result_id, run_sync(self._afetch(result_id)))

    async def aget_result(self, result_id: str) -> Any:
        return self._to_task_result(result_id, await self._afetch(result_id))

    async def _afetch(self, result_id: str) -> ResultRecord | None:
        store = await self.app.result_store()
        record: ResultRecord | None = await store.fetch(str(result_id))
        return record

    def _to_task_result(self, result_id: str, record: ResultRecord | None) -> Any:
        django_task = _django_task(record.name) if record is not None else None
        if record is None or django_task is None:
            raise _api.DoesNotExist(result_id)
        header = _header_of(record.headers)
        state = record.state
        started_at = _from_ms(record.date_started_ms)
        task_result = _api.TaskResult(
            task=_task_as_enqueued(django_task, header), id=record.task_id, status=django_status(state),
            enqueued_at=_from_ms(header.get("enqueued_at_ms")), started_at=started_at,
            finished_at=_from_ms(record.date_done_ms) if state in READY_STATES else None,
            last_attempted_at=started_at,
            args=from_wire(record.args) if record.args is not None else [],
            kwargs=from_wire(record.kwargs) if record.kwargs is not None else {},
            backend=header.get("backend") or self.alias, errors=_errors(record),
            worker_ids=[record.worker or "celeriac"] * _attempts(record),
        )
        if state == SUCCESS:
            object.__setattr__(task_result, "_return_value", from_wire(record.result))
        return task_result


def _attempts(record: ResultRecord) -> int:
    """How many times a worker started the task (retries count each attempt)."""
    started = record.date_started_ms is not None or (
        # records written before date_started_ms existed
        record.worker is not None and record.state in (STARTED, SUCCESS, FAILURE, RETRY)
    )
    return record.retries + 1 if started else record.retries


def _errors(record: ResultRecord) -> list[Any]:
    if record.state not in (FAILURE, REVOKED, RETRY) or not (record.exc_type or record.exc_message):
        return []
    path = _qualified(record.exc_type)
    # A task that never ran (revoked, expired, dead-lettered) has no traceback: its reason then.
    traceback = record.traceback or f"{path}: {record.exc_message or ''}\n"
    return [_api.TaskError(exception_class_path=path, traceback=traceback)]


def _header_of(headers: dict[str, Any] | None) -> dict[str, Any]:
    found = (headers or {}).get(DJANGO_TASK_HEADER)
    return found if isinstance(found, dict) else {}


def _task_as_enqueued(django_task: Any, header: dict[str, Any]) -> Any:
    """The module's ``Task`` with the options it was enqueued with (``.using(...)``), from the header."""
    changes: dict[str, Any] = {}
    for name in ("priority", "queue_name", "backend"):
        if name in header and header[name] != getattr(django_task, name):
            changes[name] = header[name]
    if header.get("run_after"):
        run_after = dt.datetime.fromisoformat(header["run_after"])
        if run_after != django_task.run_after:
            changes["run_after"] = run_after
    if not changes:
        return django_task
    try:
        return dataclasses.replace(django_task, **changes)
    except Exception:  # settings changed since (a backend or queue gone): the module's task
        return django_task


def _django_task(path: str | None) -> Any:
    """The ``Task`` at ``path``, or None if the record names no Django task."""
    if not path:
        return None
    try:
        found = import_string(path)
    except ImportError:
        return None
    return found if isinstance(found, _api.Task) else None


def _qualified(exc_type: str | None) -> str:
    """An importable path: celeriac stores builtins by bare name (``ValueError``)."""
    if not exc_type:
        return "builtins.Exception"
    return exc_type if "." in exc_type else f"builtins.{exc_type}"


def _now() -> dt.datetime:
    """Django's now, in whole milliseconds as every time a store gives back."""
    moment = _from_ms(now_ms())
    assert moment is not None
    return moment


def _from_ms(epoch_ms: int | None) -> dt.datetime | None:
    if epoch_ms is None:
        return None
    # Whole seconds plus milliseconds: exact, where epoch_ms / 1000 may round a microsecond off.
    seconds, millis = divmod(int(epoch_ms), 1000)
    moment = dt.datetime.fromtimestamp(seconds, dt.UTC) + dt.timedelta(milliseconds=millis)
    return moment if settings.USE_TZ else timezone.make_naive(moment)


def _aware(when: dt.datetime) -> dt.datetime:
    """Naive datetimes (USE_TZ = False) are in Django's TIME_ZONE; celeriac reads naive as UTC."""
    if when.tzinfo is not None:
        return when
    return timezone.make_aware(when, timezone.get_default_timezone())  # type: ignore[no-any-return]


__all__ = ["DJANGO_TASK_HEADER", "CeleriacBackend", "CeleriacTask", "celeriac_priority", "django_status",
           "register"]
