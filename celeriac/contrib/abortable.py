"""Celery's abortable tasks: a running task asks whether it was told to stop, and stops itself.

``celery.contrib.abortable`` becomes ``celeriac.contrib.abortable``::

    from celeriac.contrib.abortable import AbortableAsyncResult, AbortableTask

    @app.task(bind=True, base=AbortableTask)
    def crunch(self, rows):
        for row in rows:
            if self.is_aborted():
                return "stopped"
            ...

    AbortableAsyncResult(task_id, app=app).abort()

It is the stop for a plain ``def`` task in the thread pool, which ``revoke(terminate=True)``
cannot interrupt (``async def`` tasks are cancelled at their next ``await``, prefork
children get a signal). Celery writes an ``ABORTED`` state into the result backend and the
task reads it back; here ``abort()`` revokes the task, so the flag lives with the broker's
revoked ids (``revoked_ttl_seconds``) and works whether results are stored or not. A task
aborted before it started is not run at all (``REVOKED``); one aborted while it runs sees
``is_aborted()`` turn true at its next check (one read of the broker) and ends with
whatever it returns. ``AbortableAsyncResult.is_aborted()`` says whether it was aborted.
"""

from __future__ import annotations

from typing import Any

from ..result import AsyncResult
from ..task import Task

ABORTED = "ABORTED"


async def _was_revoked(app: Any, task_id: str) -> bool:
    clients = await app.clients()
    found: dict[str, bool] = await clients.control.revoked_among([task_id])
    return task_id in found


class AbortableAsyncResult(AsyncResult[Any]):
    """An ``AsyncResult`` that can ask its task to stop."""

    def abort(self) -> None:
        """Ask the task to stop: it never starts if it has not yet, else its next
        ``is_aborted()`` is true."""
        self.revoke()

    def is_aborted(self) -> bool:
        from .._bridge import run_sync

        return run_sync(_was_revoked(self.app, self.id))


class AbortableTask(Task[Any, Any]):
    """A task base whose body can check ``self.is_aborted()`` while it runs."""

    abstract = True

    def AsyncResult(self, task_id: str, **kwargs: Any) -> AbortableAsyncResult:  # Celery's name
        return AbortableAsyncResult(task_id, app=self.app, task_name=self.name)

    def is_aborted(self, **kwargs: Any) -> bool:
        """Whether this task (``task_id=`` another one) was aborted; False outside a task."""
        task_id = kwargs.get("task_id") or self.request.id
        if task_id is None:
            return False
        return self.AsyncResult(task_id).is_aborted()
