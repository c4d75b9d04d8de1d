"""Small helpers for tests that run a worker in-process."""

from __future__ import annotations

from typing import Any

from celeriac import Celery
from celeriac.worker import Worker


async def drain(app: Celery, *, expect_dead_letters: bool = False, **options: Any) -> Worker:
    """Run a worker until its queues are empty (arq's burst mode) and return it.

    Fails the test if a message went to the dead-letter queue, unless it says it expects
    that (as Dramatiq's ``join(fail_fast=True)`` does): a dead letter is a failure nobody
    would otherwise see.
    """
    options.setdefault("until_empty", True)
    options.setdefault("handle_signals", False)
    worker = Worker(app, **options)
    await worker.run()
    if not expect_dead_letters:
        clients = await app.clients()
        letters = await clients.admin.dead_letters(10)
        await app.close()
        assert not letters, "dead-lettered: " + "; ".join(f"{d.task_id}: {d.reason}" for d in letters)
    return worker
