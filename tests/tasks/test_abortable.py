"""``celeriac.contrib.abortable``: Celery's cooperative stop for a running task."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from celeriac import Celery
from celeriac.contrib.abortable import AbortableAsyncResult, AbortableTask

from ..unit.helpers import drain


async def test_a_running_plain_task_sees_the_abort_and_stops_itself(app: Celery) -> None:
    started = threading.Event()

    @app.task(bind=True, base=AbortableTask, name="proj.crunch")
    def crunch(self: Any) -> str:
        started.set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.is_aborted():
                return "stopped"
            time.sleep(0.02)
        return "never told"

    result = crunch.delay()
    handle = crunch.AsyncResult(result.id)
    assert isinstance(handle, AbortableAsyncResult) and not handle.is_aborted()
    worker = asyncio.create_task(drain(app))
    assert await asyncio.to_thread(started.wait, 30)
    await asyncio.to_thread(handle.abort)
    await worker
    assert result.get(timeout=10) == "stopped"  # it ends with what it returns, as in Celery
    assert await asyncio.to_thread(handle.is_aborted)


async def test_a_task_aborted_before_it_starts_does_not_run(app: Celery) -> None:
    ran: list[int] = []

    @app.task(bind=True, base=AbortableTask, name="proj.never")
    def never(self: Any) -> None:
        ran.append(1)

    result = never.delay()
    await asyncio.to_thread(AbortableAsyncResult(result.id, app=app).abort)
    await drain(app)
    assert ran == [] and result.state == "REVOKED"


def test_outside_a_task_nothing_is_aborted(app: Celery) -> None:
    @app.task(bind=True, base=AbortableTask, name="proj.plain")
    def plain(self: Any) -> bool:
        return bool(self.is_aborted())

    assert plain() is False  # called directly: no task id to ask about
