"""The application: settings, the task registry, sending tasks, and control."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import sys
import threading
import weakref
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar, overload

from . import _state
from ._bridge import run_sync
from .builtins import builtin_tasks
from .canvas import Signature
from .config import ResolvedSettings, Settings
from .control import Control
from .exceptions import ConfigurationError, NotRegistered
from .publish import build_message
from .result import AsyncResult
from .servers import BrokerOptions, Clients, OutgoingMessage, ResultStore, can_store_results, open_clients
from .signals import Signal
from .task import Task, make_task

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
        **settings: Any,
    ) -> None:
        self.main = main
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
        self.tasks: dict[str, Task[Any, Any]] = {}
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
    def task(self, fun: Callable[P, Coroutine[Any, Any, R]], /) -> Task[P, R]: ...

    @overload
    def task(self, fun: Callable[P, R], /) -> Task[P, R]: ...

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

    def register(self, task: Task[Any, Any]) -> None:
        self.tasks[task.name] = task

    def get_task(self, name: str) -> Task[Any, Any]:
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

    async def publish(self, messages: list[OutgoingMessage], on_duplicate: str = "error") -> None:
        broker = (await self.clients()).broker
        await broker.publish(messages, on_duplicate=on_duplicate)

    def AsyncResult(self, id: str, **kwargs: Any) -> AsyncResult[Any]:
        return AsyncResult(id, app=self, **kwargs)


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
