"""``app.control``: revoke tasks, and inspect workers through their heartbeats.

There is no broadcast channel: a revoke is a set entry every worker checks, and
``inspect()`` reads the newest heartbeat of each worker from the event log.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from . import ops
from ._bridge import run_sync
from .events import Event

if TYPE_CHECKING:
    from .app import Celery


class Control:
    def __init__(self, app: Celery) -> None:
        self.app = app

    def revoke(self, task_id: str | Iterable[str], terminate: bool = False, signal: str | None = None,
               **_: Any) -> None:
        """Revoke tasks: not run if not started; cancelled if running and ``terminate``."""
        ids = [task_id] if isinstance(task_id, str) else list(task_id)
        run_sync(self.arevoke(ids, terminate=terminate))

    async def arevoke(self, task_ids: Iterable[str], terminate: bool = False) -> None:
        await ops.revoke(self.app, list(task_ids), terminate=terminate)

    def inspect(self, timeout: float = 1.0, destination: Iterable[str] | None = None) -> Inspect:
        return Inspect(self.app, destination)

    def ping(self, timeout: float = 1.0) -> list[dict[str, dict[str, str]]]:
        return [{host: {"ok": "pong"}} for host in self.inspect().workers()]


class Inspect:
    """What each live worker reported in its newest heartbeat."""

    def __init__(self, app: Celery, destination: Iterable[str] | None = None) -> None:
        self.app = app
        self.destination = set(destination) if destination else None

    async def aworkers(self) -> dict[str, Event]:
        """The newest heartbeat of each worker seen alive within three heartbeat periods."""
        return await ops.live_workers(self.app, self.destination)

    def workers(self) -> dict[str, Event]:
        return run_sync(self.aworkers())

    def active(self) -> dict[str, list[dict[str, Any]]] | None:
        found = self.workers()
        return {host: [{"id": task_id} for task_id in event.held or []] for host, event in found.items()} or None

    def stats(self) -> dict[str, dict[str, Any]] | None:
        found = self.workers()
        return {
            host: {"pid": event.pid, "total": event.processed, "concurrency": event.concurrency,
                   "active": len(event.held or []), "last_heartbeat": event.ts}
            for host, event in found.items()
        } or None

    def ping(self) -> dict[str, dict[str, str]] | None:
        return {host: {"ok": "pong"} for host in self.workers()} or None
