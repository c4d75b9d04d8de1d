"""What the core modules share about the process: the current app, the shared tasks, the live apps.

A leaf: it imports nothing from celeriac at run time, so every core module (``task``,
``canvas``, ``result``, ``_bridge`` ...) can read the current app here instead of importing
``app.py``, and ``app.py`` can import them at the top of its module without a cycle. What
needs the ``Celery`` class itself is handed in by ``app.py`` when it is imported: how to
make the default app, and what to do when a thread's private event loop goes away.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

    from .app import Celery
    from .task import Task

_current_app: Celery | None = None

#: ``@shared_task`` tasks by name: any app finds them (``Celery.get_task``).
shared_tasks: dict[str, Task[Any, Any]] = {}

#: Every app alive in this process.
apps: weakref.WeakSet[Celery] = weakref.WeakSet()

#: Makes the app ``current_app()`` returns when no app was created; set by ``app.py``.
default_app_factory: Callable[[], Celery] | None = None

#: Run by the bridge before it closes a thread's private loop: each closes what was opened
#: for that loop (``app.py`` adds the closing of every app's clients).
loop_finalizers: list[Callable[[asyncio.AbstractEventLoop], Coroutine[Any, Any, None]]] = []


def get_current_app() -> Celery:
    """The app created last, or a default one (as ``shared_task`` needs)."""
    global _current_app
    app = _current_app
    if app is None:
        if default_app_factory is None:  # only before celeriac.app is imported, which the package does
            raise RuntimeError("celeriac.app is not imported yet, so there is no current app")
        app = _current_app = default_app_factory()
    return app


def peek_current_app() -> Celery | None:
    """The current app, or None when no app was created yet (no default one is made)."""
    return _current_app


def set_current_app(app: Celery) -> None:
    global _current_app
    _current_app = app


def register_shared(task: Task[Any, Any]) -> None:
    shared_tasks[task.name] = task
