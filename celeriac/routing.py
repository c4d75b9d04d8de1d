"""Which queue a task goes to: per-call ``queue=``, then ``task_routes``, then the task's own."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def route(
    routes: Any, task_name: str, args: Sequence[Any], kwargs: Mapping[str, Any], options: Mapping[str, Any]
) -> dict[str, Any]:
    """Options from ``task_routes`` for this task: a dict, a function, or a list of them."""
    if routes is None:
        return {}
    for router in routes if isinstance(routes, (list, tuple)) else [routes]:
        found = _one(router, task_name, args, kwargs, options)
        if found:
            return found
    return {}


def _one(router: Any, task_name: str, args: Sequence[Any], kwargs: Mapping[str, Any],
         options: Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(router, Mapping):
        for pattern, target in router.items():
            if _matches(pattern, task_name):
                return {"queue": target} if isinstance(target, str) else dict(target)
        return {}
    if callable(router):
        fn: Callable[..., Any] = router
        target = fn(task_name, args, kwargs, options)
        if target is None:
            return {}
        return {"queue": target} if isinstance(target, str) else dict(target)
    return {}


def _matches(pattern: Any, task_name: str) -> bool:
    if isinstance(pattern, re.Pattern):
        return pattern.match(task_name) is not None
    return bool(pattern == task_name or fnmatch.fnmatchcase(task_name, pattern))
