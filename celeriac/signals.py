"""Signals, under Celery's names: connect a receiver to run code around tasks and workers.

    from celeriac.signals import task_prerun

    @task_prerun.connect
    def log_start(sender, task_id, task, args, kwargs, **_):
        ...

``task_prerun`` and ``task_postrun`` run in the thread that runs the task (a pool thread
for sync tasks), so per-thread resources such as Django's database connections can be
opened and closed there. A receiver that raises is logged and does not fail the task.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("celeriac.signals")

Receiver = Callable[..., Any]


class Signal:
    def __init__(self, name: str) -> None:
        self.name = name
        self._receivers: list[Receiver] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Signal: {self.name}>"

    def connect(self, receiver: Receiver | None = None, **_: Any) -> Any:
        """Add a receiver; usable as ``@signal.connect`` or ``@signal.connect()``."""
        if receiver is None:
            return self.connect
        with self._lock:
            if receiver not in self._receivers:
                self._receivers.append(receiver)
        return receiver

    def disconnect(self, receiver: Receiver) -> None:
        with self._lock:
            if receiver in self._receivers:
                self._receivers.remove(receiver)

    @property
    def has_receivers(self) -> bool:
        return bool(self._receivers)

    def send(self, sender: Any = None, **named: Any) -> list[tuple[Receiver, Any]]:
        replies = []
        for receiver in list(self._receivers):
            try:
                replies.append((receiver, receiver(sender=sender, signal=self, **named)))
            except Exception as exc:
                logger.exception("receiver %r of signal %s raised", receiver, self.name)
                replies.append((receiver, exc))
        return replies


task_prerun = Signal("task_prerun")
task_postrun = Signal("task_postrun")
task_success = Signal("task_success")
task_failure = Signal("task_failure")
task_retry = Signal("task_retry")
task_revoked = Signal("task_revoked")
worker_ready = Signal("worker_ready")
worker_shutdown = Signal("worker_shutdown")
worker_process_init = Signal("worker_process_init")
import_modules = Signal("import_modules")
