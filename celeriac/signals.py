"""Signals, under Celery's names: connect a receiver to run code around tasks and workers.

    from celeriac.signals import task_prerun

    @task_prerun.connect
    def log_start(sender, task_id, task, args, kwargs, **_):
        ...

``task_prerun``, ``task_postrun``, ``task_success``, ``task_failure`` and ``task_retry``
run in the thread that runs the task (a pool thread for sync tasks, the event loop for
``async def`` ones), so per-thread resources such as Django's database connections can be
opened and closed there; they are also sent by eager ``apply()``. A receiver that raises
is logged and does not fail the task.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("celeriac.signals")

Receiver = Callable[..., Any]


class Signal:
    """A named hook: ``connect`` receivers, ``send`` calls them with ``sender=``, ``signal=`` and the arguments.

    ``connect(receiver, sender=...)`` limits a receiver to one sender: the same object (a
    task), or an equal string (a task name, for the publish signals), as Celery compares
    them. ``dispatch_uid=`` names a receiver so connecting it again replaces it. Receivers
    are kept by strong reference (``weak=`` is accepted and ignored).
    """

    def __init__(self, name: str, providing_args: Any = None, use_caching: bool = False) -> None:
        self.name = name
        self._receivers: list[tuple[Receiver, Any, Any]] = []  # (receiver, sender or None, dispatch_uid)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Signal: {self.name}>"

    def connect(self, receiver: Receiver | None = None, sender: Any = None, weak: bool = True,
                dispatch_uid: Any = None, **_: Any) -> Any:
        """Add a receiver; usable as ``@signal.connect``, ``@signal.connect()`` or ``@signal.connect(sender=...)``."""
        if receiver is None:
            return lambda fn: self.connect(fn, sender=sender, weak=weak, dispatch_uid=dispatch_uid)
        with self._lock:
            for i, (known, known_sender, uid) in enumerate(self._receivers):
                if dispatch_uid is not None and uid == dispatch_uid:
                    self._receivers[i] = (receiver, sender, dispatch_uid)
                    return receiver
                if dispatch_uid is None and known == receiver and _same_sender(known_sender, sender):
                    return receiver
            self._receivers.append((receiver, sender, dispatch_uid))
        return receiver

    def disconnect(self, receiver: Receiver | None = None, sender: Any = None, weak: bool = True,
                   dispatch_uid: Any = None) -> bool:
        """Remove a receiver (every connection of it, or the one for ``sender``/``dispatch_uid``)."""
        with self._lock:
            kept = [entry for entry in self._receivers if not _matches(entry, receiver, sender, dispatch_uid)]
            removed = len(kept) != len(self._receivers)
            self._receivers = kept
        return removed

    @property
    def receivers(self) -> list[Receiver]:
        return [receiver for receiver, _, _ in self._receivers]

    @property
    def has_receivers(self) -> bool:
        return bool(self._receivers)

    def send(self, sender: Any = None, **named: Any) -> list[tuple[Receiver, Any]]:
        replies = []
        for receiver, wanted, _ in list(self._receivers):
            if wanted is not None and not _same_sender(wanted, sender):
                continue
            try:
                replies.append((receiver, receiver(sender=sender, signal=self, **named)))
            except Exception as exc:
                logger.exception("receiver %r of signal %s raised", receiver, self.name)
                replies.append((receiver, exc))
        return replies

    send_robust = send


def _same_sender(wanted: Any, sender: Any) -> bool:
    """Celery's comparison: strings by value, anything else by identity."""
    if isinstance(wanted, (str, bytes)):
        return bool(wanted == sender)
    return wanted is sender


def _matches(entry: tuple[Receiver, Any, Any], receiver: Receiver | None, sender: Any, dispatch_uid: Any) -> bool:
    known, known_sender, uid = entry
    if dispatch_uid is not None:
        return bool(uid == dispatch_uid)
    if receiver is None or known != receiver:
        return False
    return sender is None or _same_sender(known_sender, sender)


# --- task signals ---------------------------------------------------------------------
# Where each is sent, and with which arguments: docs/api.md#signals.

before_task_publish = Signal("before_task_publish")
after_task_publish = Signal("after_task_publish")
task_received = Signal("task_received")
task_prerun = Signal("task_prerun")
task_postrun = Signal("task_postrun")
task_success = Signal("task_success")
task_failure = Signal("task_failure")
task_retry = Signal("task_retry")
task_revoked = Signal("task_revoked")
task_unknown = Signal("task_unknown")
task_rejected = Signal("task_rejected")
task_internal_error = Signal("task_internal_error")  # never sent: a worker's own error fails the task
task_sent = Signal("task_sent")  # Celery's old name; never sent (use after_task_publish)

# --- app signals ----------------------------------------------------------------------

import_modules = Signal("import_modules")

# --- worker signals -------------------------------------------------------------------

celeryd_init = Signal("celeryd_init")
celeryd_after_setup = Signal("celeryd_after_setup")
worker_init = Signal("worker_init")
worker_process_init = Signal("worker_process_init")
worker_process_shutdown = Signal("worker_process_shutdown")
worker_ready = Signal("worker_ready")
worker_shutting_down = Signal("worker_shutting_down")
worker_shutdown = Signal("worker_shutdown")
worker_before_create_process = Signal("worker_before_create_process")  # never sent: no child processes
heartbeat_sent = Signal("heartbeat_sent")  # never sent: heartbeats are written by the lease keeper's thread

# --- beat signals ---------------------------------------------------------------------

beat_init = Signal("beat_init")  # never sent today
beat_embedded_init = Signal("beat_embedded_init")  # never sent today

# --- logging signals ------------------------------------------------------------------

setup_logging = Signal("setup_logging")
after_setup_logger = Signal("after_setup_logger")
after_setup_task_logger = Signal("after_setup_task_logger")
