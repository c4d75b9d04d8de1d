"""The task ``start_worker`` sends to check that its worker takes tasks (Celery's ``celery.ping``)."""

from __future__ import annotations

from ...task import Task, shared_task


def _pong() -> str:
    """Return ``"pong"``."""
    return "pong"


ping: Task[[], str] = shared_task(_pong, name="celery.ping")
