"""Admin reads and actions, written once: the CLI calls them, and so will the dashboard.

Each takes the app and reaches the server through the role that holds what it needs:
queue state through ``QueueAdmin``, revoked ids and the event log through
``ControlStore``. Nothing here draws a table or parses an option.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .events import WORKER_HEARTBEAT, WORKER_OFFLINE, WORKER_ONLINE, Event, decode_event
from .message import DeadLetter
from .servers.contracts import RequeueOutcome

if TYPE_CHECKING:
    from .app import Celery

# How far back the event log is read to find each worker's newest heartbeat.
SCAN_EVENTS = 5000


async def dead_letters(app: Celery, limit: int = 100) -> list[DeadLetter]:
    return await (await app.clients()).admin.dead_letters(limit)


async def requeue_dead_letters(app: Celery, task_ids: Sequence[str] | None) -> RequeueOutcome:
    """Requeue the newest dead letter of each id (None: of every id); pending ids are skipped."""
    return await (await app.clients()).admin.requeue_dead_letters(task_ids)


async def purge_dead_letters(app: Celery) -> int:
    return await (await app.clients()).admin.purge_dead_letters()


async def purge_queues(app: Celery, queues: Sequence[str]) -> int:
    """Delete every waiting (queued or scheduled) message of ``queues``; running ones stay."""
    admin = (await app.clients()).admin
    return sum([await admin.purge(name) for name in queues])


async def queue_depths(app: Celery) -> dict[str, int]:
    """Waiting (queued plus scheduled) messages per queue."""
    return await (await app.clients()).admin.queue_depths()


async def revoke(app: Celery, task_ids: Sequence[str], *, terminate: bool = False) -> None:
    await (await app.clients()).control.revoke(list(task_ids), terminate=terminate)


async def read_events(app: Celery, after: str | None = None, limit: int = 1000) -> list[tuple[str, bytes]]:
    """Events newer than the id ``after``, oldest first; with None, the newest ``limit``."""
    return await (await app.clients()).control.read_events(after, limit)


async def live_workers(app: Celery, destination: set[str] | None = None) -> dict[str, Event]:
    """The newest heartbeat of each worker seen alive within three heartbeat periods."""
    newest: dict[str, Event] = {}
    for _, raw in await read_events(app, None, SCAN_EVENTS):
        event = decode_event(raw)
        if event.type in (WORKER_HEARTBEAT, WORKER_ONLINE, WORKER_OFFLINE):
            newest[event.hostname] = event
    stale_before = time.time() - 3 * app.settings.worker_heartbeat_seconds
    return {
        host: event for host, event in newest.items()
        if event.type != WORKER_OFFLINE and event.ts >= stale_before
        and (destination is None or host in destination)
    }
