"""Tasks every app has, under Celery's names: ``celery.map``, ``celery.starmap`` and
``celery.accumulate``.

The first two run a task's function here, in the worker, over a list of arguments: what
``task.map()``, ``task.starmap()`` and ``task.chunks()`` send. ``celery.accumulate``
returns its arguments; the canvas uses it as the body that turns a group whose
completion counts as one step (the last step of a chain in a chord's header, a chord's
group body inside another chord) into one result: the list of the group's results.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import TYPE_CHECKING, Any

from .canvas import Signature
from .task import Task

if TYPE_CHECKING:
    from .app import Celery


def builtin_tasks(app: Celery) -> dict[str, Task[Any, Any]]:
    async def call_each(task: dict[str, Any], it: list[Any], star: bool) -> list[Any]:
        fn = app.get_task(Signature.from_dict(task, app=app).task)
        if not fn.is_async:  # a sync body must not block the worker's event loop
            return await asyncio.to_thread(lambda: [fn(*item) if star else fn(item) for item in it])
        out = []
        for item in it:
            value = fn(*item) if star else fn(item)
            if inspect.isawaitable(value):
                value = await value
            out.append(value)
        return out

    async def xmap(task: dict[str, Any], it: list[Any]) -> list[Any]:
        return await call_each(task, it, star=False)

    async def xstarmap(task: dict[str, Any], it: list[Any]) -> list[Any]:
        return await call_each(task, it, star=True)

    def accumulate(*args: Any, index: int | None = None) -> Any:
        return args[index] if index is not None else list(args)

    return {
        "celery.map": Task(xmap, app, {"name": "celery.map"}),
        "celery.starmap": Task(xstarmap, app, {"name": "celery.starmap"}),
        "celery.accumulate": Task(accumulate, app, {"name": "celery.accumulate", "typing": False}),
    }
