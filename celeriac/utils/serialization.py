"""Celery's ``celery.utils.serialization`` names for what a failed task's exception becomes.

A task's exception travels as data (its class's path, ``args`` and message), never as a
pickle. ``get()`` re-creates it from its ``args`` when its class is importable; when the
class cannot be re-created from them (its ``__init__`` takes other arguments than it
passes to ``Exception``), ``get()`` raises a :class:`UnpickleableExceptionWrapper`
instead, with ``exc_module``, ``exc_cls_name`` and ``exc_args`` as in Celery. Here that is
``celeriac.exceptions.TaskError`` under Celery's name, so ``except
UnpickleableExceptionWrapper`` catches it.
"""

from __future__ import annotations

from typing import Any

from ..exceptions import TaskError

__all__ = ["UnpickleableExceptionWrapper", "get_pickleable_exception", "get_pickled_exception"]

#: A remote exception that cannot be re-created here (``TaskError``, under Celery's name).
UnpickleableExceptionWrapper = TaskError


def get_pickleable_exception(exc: BaseException) -> BaseException:
    """``exc`` itself: celeriac stores an exception as data, so any exception can be sent."""
    return exc


def get_pickled_exception(exc: BaseException) -> BaseException:
    """The exception a wrapper stands for, when it can be re-created here; else the wrapper."""
    if isinstance(exc, TaskError):
        restored = _restore(exc)
        if restored is not None:
            return restored
    return exc


def _restore(wrapper: TaskError) -> BaseException | None:
    import sys

    target: Any = sys.modules.get(wrapper.exc_module or "builtins")
    if target is None:
        return None
    for part in wrapper.exc_cls_name.split("."):
        target = getattr(target, part, None)
    if not (isinstance(target, type) and issubclass(target, BaseException)):
        return None
    try:
        return target(*wrapper.exc_args)
    except Exception:
        return None
