"""The application: settings, the task registry, sending tasks, and control."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import logging
import os
import sys
import threading
import weakref
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar, overload

import msgspec

from . import _state, signals
from ._bridge import run_sync
from .backend import ResultBackend
from .builtins import builtin_tasks
from .canvas import Signature
from .config import ResolvedSettings, Settings
from .control import Control
from .exceptions import ConfigurationError, NotRegistered
from .message import decode_envelope
from .publish import build_message
from .result import AsyncResult
from .servers import BrokerOptions, Clients, OutgoingMessage, ResultStore, can_store_results, open_clients
from .signals import Signal
from .task import Task, class_task_name, make_task
from .task import Task as BaseTask  # inside Celery, where Task is the app's task class

P = ParamSpec("P")
R = TypeVar("R")

logger = logging.getLogger("celeriac.app")


class Celery:
    """A celeriac application; the name and signature follow Celery's."""

    def __init__(
        self,
        main: str | None = None,
        *,
        broker: str | None = None,
        backend: str | None = None,
        include: Iterable[str] | None = None,
        config_source: Any = None,
        set_as_current: bool = True,
        task_cls: type[BaseTask[Any, Any]] | str | None = None,
        strict_typing: bool = True,
        **settings: Any,
    ) -> None:
        self.main = main
        # The class @app.task makes tasks from (a class or "module:Class"), as Celery's task_cls.
        self.task_cls: type[BaseTask[Any, Any]] | str = task_cls or BaseTask
        self.strict_typing = strict_typing  # the default of each task's ``typing``
        self._task_base: type[BaseTask[Any, Any]] | None = None
        self._backend: ResultBackend | None = None
        self._settings = Settings()
        # Sources are read when a setting is first needed, as Celery does: proj/celery.py
        # names "django.conf:settings" before Django has configured them.
        self._pending_config: list[tuple[Any, str | None]] = []
        self._constructor_settings = dict(settings)
        if broker is not None:
            self._constructor_settings["broker_url"] = broker
        if backend is not None:
            self._constructor_settings["result_backend"] = backend
        if include:
            self._constructor_settings["include"] = list(include)
        if config_source is not None:
            self._pending_config.append((config_source, None))
        self._settings.update(self._constructor_settings)
        self.tasks: TaskRegistry = TaskRegistry()
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Clients] = (
            weakref.WeakKeyDictionary()
        )
        self._clients_lock = threading.Lock()
        self.control = Control(self)
        self._pending_discovery: str | None = None
        # Celery's app signals; a worker or beat sends the first two once, when it starts.
        self.on_after_configure = Signal("on_after_configure")
        self.on_after_finalize = Signal("on_after_finalize")
        self._finalized = False
        self._periodic_tasks: list[tuple[str, dict[str, Any], str]] = []  # (name, entry, where added)
        _state.apps.add(self)
        if set_as_current:
            _state.set_current_app(self)

    def __repr__(self) -> str:
        return f"<Celery {self.main or '__main__'}>"

    def set_current(self) -> None:
        """Make this the current app (what ``current_app()`` and ``shared_task`` use)."""
        _state.set_current_app(self)

    def set_default(self) -> None:
        """Celery's: make this the default app. celeriac has one current app per process, so
        this is ``set_current()``."""
        _state.set_current_app(self)

    # --- configuration --------------------------------------------------------------

    @property
    def conf(self) -> Settings:
        """The settings, read from pending ``config_from_object`` sources on first use."""
        if self._pending_config:
            pending, self._pending_config = self._pending_config, []
            for source, namespace in pending:
                self._settings.load(source, namespace)
            self._settings.update(self._constructor_settings)  # what the constructor named wins
        return self._settings

    @property
    def settings(self) -> ResolvedSettings:
        """``conf`` converted and checked (``config.resolve``), resolved again after ``conf`` changes."""
        return self.conf.resolved()

    def config_from_object(self, obj: Any, namespace: str | None = None, **_: Any) -> None:
        self._pending_config.append((obj, namespace))

    def autodiscover_tasks(
        self, packages: Iterable[str] | Callable[[], Iterable[str]] | None = None,
        related_name: str = "tasks", force: bool = False,
    ) -> None:
        """Import ``<package>.tasks`` for each package (Django's installed apps by default).

        With no packages named and Django's apps not loaded yet (``proj/celery.py`` runs
        while Django starts), the import waits until they are: the worker, the Django
        app config's ``ready()`` runs it.
        """
        if packages is None and not force and not _django_apps_ready():
            self._pending_discovery = related_name
            return
        if callable(packages):
            packages = packages()
        if packages is None:
            packages = _django_apps()
        for package in packages:
            name = f"{package}.{related_name}"
            try:
                importlib.import_module(name)
            except ModuleNotFoundError as exc:
                if exc.name not in (name, package):
                    raise

    def run_pending_discovery(self) -> None:
        """Run an ``autodiscover_tasks()`` that waited for Django's apps."""
        related_name, self._pending_discovery = self._pending_discovery, None
        if related_name is not None:
            self.autodiscover_tasks(related_name=related_name, force=True)

    def import_default_modules(self) -> None:
        signals.import_modules.send(sender=self)
        self.run_pending_discovery()
        for name in [*self.settings.imports, *self.settings.include]:
            importlib.import_module(name)

    def finalize(self, auto: bool = False) -> list[BaseException]:
        """Send ``on_after_configure`` and ``on_after_finalize`` once; return what receivers raised.

        Celery sends these as the app is set up; here a worker and beat send them when they
        start, so receivers that call ``add_periodic_task`` run before beat reads its schedule.
        """
        if self._finalized:
            return []
        self._finalized = True
        replies = self.on_after_configure.send(sender=self, source=self.conf)
        replies += self.on_after_finalize.send(sender=self)
        return [reply for _, reply in replies if isinstance(reply, BaseException)]

    def add_periodic_task(self, schedule: Any, sig: Any, args: Iterable[Any] = (), kwargs: Any = (),
                          name: str | None = None, **opts: Any) -> str:
        """Add a beat entry, as Celery's does: ``app.add_periodic_task(10.0, add.s(2, 2), name="adds")``.

        The entry is checked when beat starts (naming it); returns its name.
        """
        if isinstance(sig, Signature):
            if sig.get("subtask_type"):
                raise ConfigurationError(
                    f"add_periodic_task({name or sig!r}): beat sends a single task; put the {sig['subtask_type']} "
                    "in a task and schedule that task")
            sig = sig.clone(list(args), dict(kwargs or {})) if (args or kwargs) else sig
            task_name, sig_args, sig_kwargs, options = sig["task"], sig["args"], sig["kwargs"], dict(sig["options"])
        else:  # a task, or a task's name
            task_name = sig if isinstance(sig, str) else getattr(sig, "name", str(sig))
            sig_args, sig_kwargs, options = list(args), dict(kwargs or {}), {}
            sig = Signature(task_name, sig_args, sig_kwargs)
        entry: dict[str, Any] = {"task": task_name, "schedule": schedule, "args": list(sig_args),
                                 "kwargs": dict(sig_kwargs), "options": {**options, **opts}}
        caller = sys._getframe(1)
        key = name or repr(sig)
        self._periodic_tasks.append((key, entry, f"{caller.f_code.co_filename}:{caller.f_lineno}"))
        return key

    def added_periodic_tasks(self) -> list[tuple[str, dict[str, Any], str]]:
        """``(name, entry, where it was added)`` for each ``add_periodic_task`` call."""
        return list(self._periodic_tasks)

    # --- tasks ----------------------------------------------------------------------

    @overload
    def task(self, fun: Callable[P, Coroutine[Any, Any, R]], /) -> BaseTask[P, R]: ...

    @overload
    def task(self, fun: Callable[P, R], /) -> BaseTask[P, R]: ...

    @overload
    def task(self, *, bind: Literal[False] = ..., **options: Any) -> _TaskDecorator: ...

    @overload
    def task(self, *, bind: Literal[True], **options: Any) -> _BoundTaskDecorator: ...

    def task(  # type: ignore[misc]  # mypy cannot match **options against the keyword-only overloads
        self, fun: Callable[..., Any] | None = None, /, *, bind: bool = False, **options: Any
    ) -> Any:
        """Make a function a task: ``@app.task`` or ``@app.task(bind=True, ...)``."""
        options["bind"] = bind
        if fun is not None:
            return make_task(fun, self, options)
        return lambda f: make_task(f, self, options)

    def register(self, task: BaseTask[Any, Any]) -> None:
        self.tasks[task.name] = task

    @property
    def Task(self) -> type[BaseTask[Any, Any]]:  # Celery's name
        """The base class of this app's tasks: ``task_cls`` bound to this app.

        Subclass it for behaviour every task shares (``class Base(app.Task): def on_failure(...)``)
        and pass ``base=Base``, or for a class-based task registered with ``register_task``.
        """
        if self._task_base is None:
            base = self.task_cls
            if isinstance(base, str):
                base = _symbol_by_name(base)
            if not (isinstance(base, type) and issubclass(base, BaseTask)):
                raise ConfigurationError(f"task_cls={self.task_cls!r} is not a Task subclass")
            self._task_base = type("Task", (base,), {"_app": self, "__module__": base.__module__,
                                                     "__qualname__": base.__qualname__, "abstract": True})
        return self._task_base

    def register_task(self, task: BaseTask[Any, Any] | type[BaseTask[Any, Any]], **options: Any) -> BaseTask[Any, Any]:
        """Register a class-based task (an instance, or its class): ``app.register_task(MyTask())``.

        A task without a ``name`` is named ``module.ClassName``; one bound to no app is bound
        to this one. Returns the registered instance.
        """
        if isinstance(task, type):
            task = task()
        if not task.name:
            type(task).name = class_task_name(type(task), self)
        if task._app is None:
            task._app = self
        for key, value in options.items():
            setattr(task, key, value)
        if "__name__" not in vars(task):
            task.__name__ = type(task).__name__  # type: ignore[attr-defined]
        self.register(task)
        return task

    @property
    def backend(self) -> ResultBackend:
        """The result store with Celery's backend methods (``get_task_meta``, ``store_result`` ...)."""
        if self._backend is None:
            self._backend = ResultBackend(self)
        return self._backend

    def get_task(self, name: str) -> BaseTask[Any, Any]:
        task = self.tasks.get(name) or _state.shared_tasks.get(name)
        if task is None and name.startswith("celery."):
            for builtin in builtin_tasks(self).values():
                self.tasks.setdefault(builtin.name, builtin)
            task = self.tasks.get(name)
        if task is None:
            raise NotRegistered(
                f"task {name!r} is not registered; import the module that defines it in the "
                "worker (-A, include=, imports= or autodiscover_tasks())"
            )
        return task

    # --- clients --------------------------------------------------------------------

    def result_backend_url(self) -> str | None:
        settings = self.settings
        url = settings.result_backend
        if url in ("disabled", ""):
            return None
        if url is None:
            broker_url = settings.broker_url
            return broker_url if can_store_results(broker_url) else None
        if url == "django-db":
            return "django://"
        return str(url)

    def broker_options(self) -> BrokerOptions:
        settings = self.settings
        return BrokerOptions(
            max_deliveries=settings.broker_max_deliveries,
            revoked_ttl_s=settings.revoked_ttl_seconds,
            result_expires_s=settings.result_expires,
            events_max=settings.events_max,
        )

    def new_clients(self) -> Clients:
        """Fresh, unconnected clients (the lease keeper's thread has its own)."""
        settings = self.settings
        return open_clients(settings.broker_url, self.result_backend_url(), self.broker_options(),
                            settings.result_expires)

    async def clients(self) -> Clients:
        """The connected clients for the running event loop."""
        loop = asyncio.get_running_loop()
        found = self._clients.get(loop)
        if found is not None:
            return found
        clients = self.new_clients()
        await clients.broker.connect()
        if clients.store is not None:
            await clients.store.connect()
        with self._clients_lock:
            return self._clients.setdefault(loop, clients)

    async def result_store(self) -> ResultStore:
        store = (await self.clients()).store
        if store is None:
            raise ConfigurationError(
                "no result backend is configured (the broker cannot hold results); set "
                "result_backend to a redis://, sqlite:/// or django:// URL, or pass "
                "ignore_result=True"
            )
        return store

    async def close(self) -> None:
        """Close the running loop's clients."""
        clients = self._clients.pop(asyncio.get_running_loop(), None)
        if clients is not None:
            await clients.broker.close()
            if clients.store is not None:
                await clients.store.close()

    # --- sending --------------------------------------------------------------------

    def send_task(
        self, name: str, args: Iterable[Any] | None = None, kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> AsyncResult[Any]:
        """Send a task by name; the task need not be importable here."""
        message, result = build_message(self, name, args, kwargs, options)
        run_sync(self.publish([message], on_duplicate=options.get("on_duplicate", "error")))
        return result

    async def asend_task(
        self, name: str, args: Iterable[Any] | None = None, kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> AsyncResult[Any]:
        message, result = build_message(self, name, args, kwargs, options)
        await self.publish([message], on_duplicate=options.get("on_duplicate", "error"))
        return result

    async def publish(self, messages: Sequence[OutgoingMessage], on_duplicate: str = "error") -> None:
        """Publish, sending ``before_task_publish`` and ``after_task_publish`` when they have receivers."""
        if signals.before_task_publish.has_receivers:
            messages = [_before_publish(m) for m in messages]
        clients = await self.clients()
        await clients.broker.publish(messages, on_duplicate=on_duplicate)
        if self.settings.task_send_sent_event:  # one more call per send, as Celery's sent event is
            await _emit_sent(clients, messages)
        if signals.after_task_publish.has_receivers:
            for message in messages:
                _after_publish(message)

    def AsyncResult(self, id: str, **kwargs: Any) -> AsyncResult[Any]:
        return AsyncResult(id, app=self, **kwargs)


async def _emit_sent(clients: Clients, messages: Sequence[OutgoingMessage]) -> None:
    """``task-sent`` events for what was just published; a failure to write them is logged, never raised
    (the messages are stored: events are a view for people)."""
    from .events import sent_events
    from .ops import client_name

    try:
        await clients.control.emit_events(sent_events(messages, client_name()))
    except Exception as exc:
        logging.getLogger("celeriac").debug("task-sent events not written: %s", exc)


class TaskRegistry(dict[str, Task[Any, Any]]):
    """``app.tasks``: tasks by name, with Celery's ``register``/``unregister``."""

    def register(self, task: Task[Any, Any] | type[Task[Any, Any]]) -> Task[Any, Any]:
        instance = task() if isinstance(task, type) else task
        self[instance.name] = instance
        return instance

    def unregister(self, name: str | Task[Any, Any]) -> None:
        key = name if isinstance(name, str) else name.name
        try:
            del self[key]
        except KeyError:
            raise NotRegistered(f"task {key!r} is not registered") from None

    def regular(self) -> dict[str, Task[Any, Any]]:
        return dict(self)


def _symbol_by_name(path: str) -> Any:
    """``"package.module:Name"`` (or ``"package.module.Name"``) imported."""
    module_name, sep, attribute = path.partition(":")
    if not sep:
        module_name, _, attribute = path.rpartition(".")
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target


# --- the publish signals --------------------------------------------------------------

_MESSAGE_FIELDS = {"task": "task", "id": "id", "root_id": "root_id", "parent_id": "parent_id", "group": "group_id",
                   "group_index": "group_index", "retries": "retries", "eta": "eta_ms", "expires": "expires_ms",
                   "shadow": "shadow", "ignore_result": "ignore_result"}


def _signal_arguments(message: OutgoingMessage) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(the raw message, Celery's ``headers`` view of it, Celery's ``body``) for the publish signals."""
    raw: dict[str, Any] = msgspec.json.decode(message.body)
    envelope = decode_envelope(message.body, frozenset({"json", "pickle"}))
    fields = {name: getattr(envelope, attribute) for name, attribute in _MESSAGE_FIELDS.items()}
    fields.update(timelimit=[envelope.time_limit, envelope.soft_time_limit], lang="py")
    headers = {**(raw.get("headers") or {}), **fields}
    body = {"args": envelope.args, "kwargs": envelope.kwargs,
            "embed": {"callbacks": envelope.link or None, "errbacks": envelope.link_error or None,
                      "chain": envelope.chain or None, "chord": envelope.chord}}
    return raw, headers, body


def _before_publish(message: OutgoingMessage) -> OutgoingMessage:
    """Send ``before_task_publish``; headers a receiver adds, changes or removes go into the message."""
    raw, headers, body = _signal_arguments(message)
    own = dict(raw.get("headers") or {})
    signals.before_task_publish.send(
        sender=raw["task"], body=(body["args"], body["kwargs"], body["embed"]), exchange="",
        routing_key=message.queue, headers=headers, properties=dict(own.get("properties") or {}),
        declare=[], retry_policy=None)
    # The message's own fields are not headers here: changing them in the view changes nothing.
    changed = {k: v for k, v in headers.items() if (k not in _MESSAGE_FIELDS and k not in ("timelimit", "lang"))
               or k in own}
    if changed == own:
        return message
    raw["headers"] = changed
    return dataclasses.replace(message, body=msgspec.json.encode(raw))


def _after_publish(message: OutgoingMessage) -> None:
    raw, headers, body = _signal_arguments(message)
    signals.after_task_publish.send(sender=raw["task"], headers=headers,
                                    body=(body["args"], body["kwargs"], body["embed"]), exchange="",
                                    routing_key=message.queue)


async def close_clients_of(loop: asyncio.AbstractEventLoop) -> None:
    """Close every app's clients made for ``loop`` (a thread's private loop going away)."""
    for app in list(_state.apps):
        clients = app._clients.pop(loop, None)
        if clients is not None:
            await clients.broker.close()
            if clients.store is not None:
                await clients.store.close()


def current_app() -> Celery:
    """The app created last, or a default one (as ``shared_task`` needs)."""
    return _state.get_current_app()


register_shared = _state.register_shared

# What _state and the bridge need of this module, handed over here so that they import nothing of it.
_state.default_app_factory = lambda: Celery("default")
_state.loop_finalizers.append(close_clients_of)


def _django_apps_ready() -> bool:
    """False only in a Django project whose app registry is not loaded yet."""
    try:  # Django is optional
        from django.apps import apps
        from django.conf import settings
    except ImportError:
        return True
    if apps.ready:
        return True
    return not (os.environ.get("DJANGO_SETTINGS_MODULE") or settings.configured)


def _django_apps() -> list[str]:
    try:  # Django is optional
        from django.apps import apps
    except ImportError:
        return []
    if not apps.apps_ready:
        return []
    return [config.name for config in apps.get_app_configs()]


class _TaskDecorator:
    @overload
    def __call__(self, fun: Callable[P, Coroutine[Any, Any, R]], /) -> Task[P, R]: ...
    @overload
    def __call__(self, fun: Callable[P, R], /) -> Task[P, R]: ...
    def __call__(self, fun: Callable[..., Any], /) -> Any: ...


class _BoundTaskDecorator:
    """``@app.task(bind=True)``: the first parameter (the task itself) is not an argument."""

    @overload
    def __call__(self, fun: Callable[Concatenate[Any, P], Coroutine[Any, Any, R]], /) -> Task[P, R]: ...
    @overload
    def __call__(self, fun: Callable[Concatenate[Any, P], R], /) -> Task[P, R]: ...
    def __call__(self, fun: Callable[..., Any], /) -> Any: ...


App = Celery
