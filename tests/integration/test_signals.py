"""Signals fire around tasks and workers, in the thread that runs the task."""

from __future__ import annotations

import threading
from typing import Any

from celeriac import Celery, group, signals

from ..unit.helpers import drain


async def test_task_and_worker_signals(backend_url: str) -> None:
    app = Celery("proj", broker=backend_url)
    seen: list[tuple[str, Any]] = []

    @app.task
    def work(x: int) -> int:
        seen.append(("body", threading.current_thread().name))
        return x

    @app.task
    def broken() -> None:
        raise KeyError("k")

    def prerun(sender: Any, task_id: str, **_: Any) -> None:
        # Named by task: work and broken may run at once on two pool threads, in either order.
        seen.append((f"prerun {sender.name}", threading.current_thread().name))

    receivers = {
        signals.task_prerun: prerun,
        signals.task_success: lambda sender, result, **_: seen.append(("success", result)),
        signals.task_failure: lambda sender, exception, **_: seen.append(("failure", type(exception))),
        signals.worker_ready: lambda sender, **_: seen.append(("ready", None)),
        signals.worker_shutdown: lambda sender, **_: seen.append(("shutdown", None)),
    }
    for signal, receiver in receivers.items():
        signal.connect(receiver)
    try:
        work.delay(7)
        broken.delay()
        await drain(app)
    finally:
        for signal, receiver in receivers.items():
            signal.disconnect(receiver)
    names = [name for name, _ in seen]
    assert names[0] == "ready" and names[-1] == "shutdown"
    assert ("success", 7) in seen and ("failure", KeyError) in seen
    prerun_thread = next(value for name, value in seen if name == f"prerun {work.name}")
    assert ("body", prerun_thread) in seen  # same thread as the body


def test_group_uses_its_tasks_app() -> None:
    first = Celery("first", broker="memory://first-app")
    Celery("second", broker="memory://second-app")  # created last: the current app

    @first.task
    def add(x: int, y: int) -> int:
        return x + y

    assert group(add.s(1, 1), add.s(2, 2)).app is first
