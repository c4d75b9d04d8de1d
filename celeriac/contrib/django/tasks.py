"""A backend for Django's Tasks framework: tasks written with ``django.tasks`` run on celeriac.

::

    TASKS = {
        "default": {
            "BACKEND": "celeriac.contrib.django.tasks.CeleriacBackend",
            "QUEUES": ["default", "emails"],     # Django's check of queue_name, as usual
            "OPTIONS": {
                "app": "proj.celery:app",          # default: CELERIAC_APP, else <project>.celery
                "queue_map": {"emails": "mail"},   # Django queue -> celeriac queue (default: same name;
                                                   # "default" -> the app's task_default_queue)
                "track_started": True,             # store RUNNING when a worker starts one (default)
            },
        }
    }

Tasks defined with ``@task`` and sent with ``.enqueue()`` / ``.aenqueue()`` go through the
app's broker and run on ``manage.py celeriac worker``; ``get_result()`` /
``aget_result()`` read the app's result store. Django 6.0 ships the framework as
``django.tasks``; on Django 5.2 install the ``django-tasks`` backport, which has the same
API under ``django_tasks``. Without either, this module still imports (the app's
autodiscovery imports it), and using the backend says what to install.

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

What ``get_result()`` cannot know: ``enqueued_at`` and ``started_at`` (the result
store keeps when a task finished, not when it was sent or started), and ``args`` /
``kwargs`` once the task has run, unless ``result_extended = True``. The
``TaskResult`` that ``enqueue()`` returns has all of them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable, Coroutine
from types import SimpleNamespace
from typing import Any

from ..._bridge import run_sync
from ...message import (
    FAILURE,
    PENDING,
    READY_STATES,
    RECEIVED,
    RETRY,
    REVOKED,
    STARTED,
    SUCCESS,
    ResultRecord,
)
from ...serialization import from_wire, to_wire

DJANGO_MIN_PRIORITY = -100
DJANGO_MAX_PRIORITY = 100
CELERIAC_MAX_PRIORITY = 9


def _load_framework() -> SimpleNamespace | None:
    """Django 6's ``django.tasks``, else the ``django_tasks`` backport, else None."""
    try:
        from django.tasks import DEFAULT_TASK_QUEUE_NAME, base, exceptions, signals
        from django.tasks.backends.base import BaseTaskBackend
        from django.utils.json import normalize_json
    except ImportError:
        pass
    else:
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


_WAITING_STATES = frozenset({PENDING, RECEIVED, RETRY})


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
    from ...task import make_task

    path = django_task.module_path
    found = _registered.get(path)
    if found is not None and found.fun.django_func is django_task.func:
        return found
    options = django_task.get_backend().options if hasattr(django_task, "get_backend") else {}
    runner = _runner(django_task)
    celeriac_task = make_task(runner, None, {
        "name": path,
        "typing": False,  # Django checks nothing at enqueue; a context parameter would not bind
        "track_started": bool(options.get("track_started", True)),
    })
    _registered[path] = celeriac_task
    return celeriac_task


def _runner(django_task: Any) -> Callable[..., Any]:
    """The function the worker calls: Django's, with its context and signals around it."""
    func = django_task.func
    takes_context = bool(django_task.takes_context)

    if _is_coroutine_function(func):

        async def run_async(*args: Any, **kwargs: Any) -> Any:
            task_result = _running_result(django_task, args, kwargs)
            call_args = (_api.TaskContext(task_result=task_result), *args) if takes_context else args
            _send_signal("task_started", task_result)
            try:
                value = await func(*call_args, **kwargs)
            except BaseException as exc:
                _finish(task_result, exc)
                raise
            return _finish(task_result, None, value)

        run_async.django_func = func  # type: ignore[attr-defined]
        return run_async

    def run_sync_task(*args: Any, **kwargs: Any) -> Any:
        from django.db import close_old_connections

        # A worker thread is like a request thread: drop connections past CONN_MAX_AGE
        # or broken by the server before and after, as Django does around requests.
        close_old_connections()
        try:
            task_result = _running_result(django_task, args, kwargs)
            call_args = (_api.TaskContext(task_result=task_result), *args) if takes_context else args
            _send_signal("task_started", task_result)
            try:
                value = func(*call_args, **kwargs)
            except BaseException as exc:
                _finish(task_result, exc)
                raise
            return _finish(task_result, None, value)
        finally:
            close_old_connections()

    run_sync_task.django_func = func  # type: ignore[attr-defined]
    return run_sync_task


def _is_coroutine_function(func: Any) -> bool:
    import inspect

    return inspect.iscoroutinefunction(func)


def _running_result(django_task: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    from django.utils import timezone

    from ...context import current_request

    request = current_request()
    now = timezone.now()
    attempts = (request.retries if request else 0) + 1
    worker = (request.hostname if request else None) or "celeriac"
    return _api.TaskResult(
        task=django_task, id=(request.id if request else None) or str(uuid.uuid4()),
        status=_api.TaskResultStatus.RUNNING, enqueued_at=None, started_at=now, finished_at=None,
        last_attempted_at=now, args=list(args), kwargs=dict(kwargs), backend=django_task.backend,
        errors=[], worker_ids=[worker] * attempts,
    )


def _finish(task_result: Any, exc: BaseException | None, value: Any = None) -> Any:
    """Mark ``task_result`` finished, send ``task_finished``; return the value as JSON."""
    from django.utils import timezone

    object.__setattr__(task_result, "finished_at", timezone.now())
    if exc is None:
        value = _api.normalize_json(value)
        object.__setattr__(task_result, "_return_value", value)
        object.__setattr__(task_result, "status", _api.TaskResultStatus.SUCCESSFUL)
    else:
        task_result.errors.append(_api.TaskError(exception_class_path=_exception_path(type(exc)),
                                                 traceback=_format(exc)))
        object.__setattr__(task_result, "status", _api.TaskResultStatus.FAILED)
    _send_signal("task_finished", task_result)
    return value


def _send_signal(name: str, task_result: Any) -> None:
    getattr(_api.signals, name).send(sender=CeleriacBackend, task_result=task_result)


def _exception_path(kind: type[BaseException]) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"


def _format(exc: BaseException) -> str:
    import traceback

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
            from django.core.exceptions import ImproperlyConfigured

            raise ImproperlyConfigured(_NO_FRAMEWORK)
        super().__init__(alias, params)
        self._app: Any = None

    # --- the app --------------------------------------------------------------------

    @property
    def app(self) -> Any:
        """OPTIONS["app"], else the project's app (CELERIAC_APP or <project>.celery), else the current one."""
        if self._app is None:
            from ...app import current_app
            from ...cli import find_app
            from .discovery import load_project_app

            path = self.options.get("app")
            self._app = find_app(path) if path else (load_project_app(required=False) or current_app())
        return self._app

    def celeriac_queue(self, queue_name: str) -> str:
        queue_map: dict[str, str] = self.options.get("queue_map") or {}
        if queue_name in queue_map:
            return queue_map[queue_name]
        if queue_name == _api.DEFAULT_QUEUE:
            return str(self.app.conf.task_default_queue)
        return queue_name

    # --- enqueueing -----------------------------------------------------------------

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        self.validate_task(task)
        task_result, send = self._prepare(task, args, kwargs)
        run_sync(send())
        _send_signal("task_enqueued", task_result)
        return task_result

    async def aenqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        self.validate_task(task)
        task_result, send = self._prepare(task, args, kwargs)
        await send()
        _send_signal("task_enqueued", task_result)
        return task_result

    def _prepare(self, task: Any, args: Any, kwargs: Any) -> tuple[Any, Callable[[], Coroutine[Any, Any, None]]]:
        from django.utils import timezone

        from ...publish import build_message

        celeriac_task = register(task)
        app = self.app
        task_id = str(uuid.uuid4())
        # Built first: TaskResult checks the arguments are JSON, as every backend does.
        task_result = _api.TaskResult(
            task=task, id=task_id, status=_api.TaskResultStatus.READY, enqueued_at=timezone.now(),
            started_at=None, finished_at=None, last_attempted_at=None, args=list(args), kwargs=dict(kwargs),
            backend=self.alias, errors=[], worker_ids=[],
        )
        options: dict[str, Any] = {
            "task_id": task_id, "queue": self.celeriac_queue(task.queue_name),
            "priority": celeriac_priority(task.priority),
        }
        if task.run_after is not None:
            options["eta"] = _aware(task.run_after)

        async def send() -> None:
            if app.conf.task_always_eager:  # runs here and now, as apply_async() does then
                await asyncio.get_running_loop().run_in_executor(
                    None, lambda: celeriac_task.apply(task_result.args, task_result.kwargs, task_id=task_id)
                )
                return
            clients = await app.clients()
            if clients.store is not None:
                # A PENDING record naming the Django task, written before the message
                # exists, so get_result() finds the task even before a worker starts it;
                # its token 0 loses to any record a run writes.
                await clients.store.store([ResultRecord(
                    task_id=task_id, state=PENDING, name=task.module_path, fencing_token=0,
                    args=to_wire(task_result.args), kwargs=to_wire(task_result.kwargs),
                )])
            message, _ = build_message(app, celeriac_task.name, task_result.args, task_result.kwargs, options,
                                       celeriac_task.send_options())
            await app.publish([message])

        return task_result, send

    # --- results --------------------------------------------------------------------

    def get_result(self, result_id: str) -> Any:
        return self._to_task_result(result_id, run_sync(self._afetch(result_id)))

    async def aget_result(self, result_id: str) -> Any:
        return self._to_task_result(result_id, await self._afetch(result_id))

    async def _afetch(self, result_id: str) -> ResultRecord | None:
        store = await self.app.result_store()
        record: ResultRecord | None = await store.fetch(result_id)
        return record

    def _to_task_result(self, result_id: str, record: ResultRecord | None) -> Any:
        django_task = _django_task(record.name) if record is not None else None
        if record is None or django_task is None:
            raise _api.DoesNotExist(result_id)
        finished_at = _from_ms(record.date_done_ms) if record.state in READY_STATES else None
        ran = record.state not in _WAITING_STATES or record.retries > 0
        worker_ids = [record.worker or "celeriac"] * (record.retries + 1) if ran else []
        errors = []
        if record.state in (FAILURE, REVOKED):
            errors.append(_api.TaskError(exception_class_path=_qualified(record.exc_type),
                                         traceback=record.traceback or record.exc_message or ""))
        task_result = _api.TaskResult(
            task=django_task, id=result_id, status=django_status(record.state), enqueued_at=None,
            started_at=None, finished_at=finished_at, last_attempted_at=finished_at,
            args=from_wire(record.args) if record.args is not None else [],
            kwargs=from_wire(record.kwargs) if record.kwargs is not None else {},
            backend=self.alias, errors=errors, worker_ids=worker_ids,
        )
        if record.state == SUCCESS:
            object.__setattr__(task_result, "_return_value", from_wire(record.result))
        return task_result


def _django_task(path: str | None) -> Any:
    """The ``Task`` at ``path``, or None if the record names no Django task."""
    if not path:
        return None
    from django.utils.module_loading import import_string

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


def _from_ms(epoch_ms: int | None) -> dt.datetime | None:
    if epoch_ms is None:
        return None
    from django.conf import settings
    from django.utils import timezone

    moment = dt.datetime.fromtimestamp(epoch_ms / 1000, dt.UTC)
    return moment if settings.USE_TZ else timezone.make_naive(moment)


def _aware(when: dt.datetime) -> dt.datetime:
    """Naive datetimes (USE_TZ = False) are in Django's TIME_ZONE; celeriac reads naive as UTC."""
    if when.tzinfo is not None:
        return when
    from django.utils import timezone

    return timezone.make_aware(when, timezone.get_default_timezone())  # type: ignore[no-any-return]


__all__ = ["CeleriacBackend", "CeleriacTask", "celeriac_priority", "django_status", "register"]
