"""Tasks written with Django's Tasks framework, run by celeriac workers in tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

try:
    from django.tasks import task
except ImportError:  # Django 5.2: the backport
    from django_tasks import task


@task
def add(x: int, y: int) -> int:
    return x + y


@task(queue_name="emails", priority=50)
async def greet(name: str) -> str:
    return f"hello {name}"


@task(takes_context=True)
def whoami(context: Any, label: str) -> dict[str, Any]:
    return {"id": context.task_result.id, "attempt": context.attempt, "label": label}


@task
def fail(message: str) -> None:
    raise ValueError(message)


@task(priority=-100)
def append_line(path: str, line: str) -> None:
    """Appends ``line`` to ``path``: the order the worker ran tasks in."""
    with Path(path).open("a") as f:
        f.write(line + "\n")
