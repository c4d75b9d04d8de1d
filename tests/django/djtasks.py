"""Tasks written with Django's Tasks framework, run by celeriac workers in tests."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

try:
    from django.tasks import task
except ImportError:  # Django 5.2: the backport
    from django_tasks import task


@task
def add(x: int, y: int) -> int:
    return x + y


@task
async def add_async(x: int, y: int) -> int:
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


@task
async def fail_async(message: str) -> None:
    raise ValueError(message)


@task
def system_exit() -> None:
    raise SystemExit("This Task failed due to SystemExit")


@task
def keyboard_interrupt() -> None:
    raise KeyboardInterrupt("This Task failed due to KeyboardInterrupt")


@task
def exit_one() -> None:
    sys.exit(1)


@task
def lambda_result() -> Any:
    return lambda: True  # neither JSON nor picklable: the framework fails the task


@task(takes_context=True)
def wait_for(context: Any, path: str) -> int:
    """Runs until ``path`` exists (the test creates it once it has seen the task RUNNING)."""
    while not Path(path).exists():
        time.sleep(0.01)  # a file is the only signal a test can send into a worker process
    return int(context.attempt)


@task(queue_name="emails")
def record_queue(path: str, label: str) -> str:
    with Path(path).open("a") as f:
        f.write(label + "\n")
    return label


@task
def count_users() -> int:
    """Reads the database: eager, it must see the caller's uncommitted rows."""
    from django.contrib.auth.models import User

    return int(User.objects.count())
