"""Small helpers for tests that run a worker in-process."""

from __future__ import annotations

from typing import Any

from celeriac import Celery
from celeriac.worker import Worker


async def drain(app: Celery, **options: Any) -> Worker:
    """Run a worker until its queues are empty (arq's burst mode) and return it."""
    options.setdefault("until_empty", True)
    options.setdefault("handle_signals", False)
    worker = Worker(app, **options)
    await worker.run()
    return worker
