"""Admin reads and actions, written once: the CLI calls them, and so will the dashboard.

Each takes the app and reaches the server through the role that holds what it needs:
queue state through ``QueueAdmin``, revoked ids, the event log, the per-minute aggregates
and the control log through ``ControlStore``. Nothing here draws a table or parses an
option.

Remote control (``app.control.inspect()``, ``rate_limit``, ``shutdown`` ...) is a
request/reply exchange written into the control log, a small capped log of its own beside
the event log (``emit_control``/``read_control``): a client appends a ``control-request``
record (a command, its arguments, the destination, a request id); every worker reads the
control log after its own cursor a few times a second (``worker/control.py``), runs the
requests meant for it and, when asked, appends a ``control-reply`` with the same request
id; the client reads the log after the position it noted before sending, and collects the
replies until every live worker has answered or its timeout passes. Workers polling it
read only control records, however busy the event log is.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from .events import WORKER_HEARTBEAT, WORKER_OFFLINE, WORKER_ONLINE, Event, decode_event
from .message import DeadLetter
from .servers.contracts import QueueStats, RequeueOutcome
from .stats import StatsRow

if TYPE_CHECKING:
    from .app import Celery

# How far back the event log is read to find each worker's newest heartbeat, at most (and
# at most events_max): with three events per task a busy log turns over quickly.
SCAN_EVENTS = 20_000
_WORKER_PREFIX = b'{"type":"worker-'  # heartbeats, online, offline: the others are skipped undecoded
# Remote control records in the control log.
CONTROL_REQUEST = "control-request"
CONTROL_REPLY = "control-reply"
# How often a client waiting for replies reads the log: from the first value, doubling up to the second.
REPLY_POLL_S = (0.02, 0.1)
READ_BATCH = 1000


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


async def queue_stats(app: Celery) -> dict[str, QueueStats]:
    """Per queue: queued, scheduled and leased counts, the oldest queued message's due time,
    dead letters and the lease counters (``QueueAdmin.queue_stats``)."""
    return await (await app.clients()).admin.queue_stats()


async def dead_letter_count(app: Celery) -> int:
    return await (await app.clients()).admin.dead_letter_count()


async def read_stats(app: Celery, since_minute: int, until_minute: int) -> list[StatsRow]:
    """The per-minute aggregates (``celeriac/stats.py``) of those minutes, both included."""
    return await (await app.clients()).control.read_stats(since_minute, until_minute)


async def revoke(app: Celery, task_ids: Sequence[str], *, terminate: bool = False) -> None:
    await (await app.clients()).control.revoke(list(task_ids), terminate=terminate)


async def read_events(app: Celery, after: str | None = None, limit: int = 1000) -> list[tuple[str, bytes]]:
    """Events newer than the id ``after``, oldest first; with None, the newest ``limit``."""
    return await (await app.clients()).control.read_events(after, limit)


async def live_workers(app: Celery, destination: set[str] | None = None) -> dict[str, Event]:
    """The newest heartbeat of each worker seen alive within three heartbeat periods."""
    newest: dict[str, Event] = {}
    for _, raw in await read_events(app, None, min(SCAN_EVENTS, max(app.settings.events_max, 1))):
        if not raw.startswith(_WORKER_PREFIX):
            continue
        event = decode_event(raw)
        if event.type in (WORKER_HEARTBEAT, WORKER_ONLINE, WORKER_OFFLINE):
            newest[event.hostname] = event
    stale_before = time.time() - 3 * app.settings.worker_heartbeat_seconds
    return {
        host: event for host, event in newest.items()
        if event.type != WORKER_OFFLINE and event.ts >= stale_before
        and (destination is None or host in destination)
    }


# --- remote control: requests and replies through the control log ---------------------


class ControlMessage(msgspec.Struct, omit_defaults=True, kw_only=True):
    """A control request or reply, as it sits in the control log.

    ``type``, ``ts`` and ``hostname`` come first and mean what they mean in an ``Event``
    (the sender's name: a client's, or the replying worker's), so a record reads as an
    ``Event`` too.
    """

    type: str
    ts: float
    hostname: str
    request_id: str
    command: str | None = None  # requests
    arguments: dict[str, Any] = {}
    destination: list[str] | None = None  # None: every worker
    pattern: str | None = None  # a glob (or, with matcher="pcre", a regex) worker names must match
    matcher: str | None = None
    reply: bool = False  # whether the sender waits for replies
    answer: Any = None  # replies


def _repr_hook(value: Any) -> Any:
    """What an answer holds that JSON cannot (a task argument of a user's type) travels as its repr."""
    try:
        return repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__qualname__}>"


_control_encoder = msgspec.json.Encoder(enc_hook=_repr_hook)
_control_decoder = msgspec.json.Decoder(ControlMessage)
_REQUEST_PREFIX = b'{"type":"' + CONTROL_REQUEST.encode() + b'"'
_REPLY_PREFIX = b'{"type":"' + CONTROL_REPLY.encode() + b'"'


def encode_control(message: ControlMessage) -> bytes:
    return _control_encoder.encode(message)


def decode_control(raw: bytes) -> ControlMessage:
    return _control_decoder.decode(raw)


def name_matches(hostname: str, pattern: str | None, matcher: str | None = None) -> bool:
    """Whether a worker's name matches a request's ``pattern``: a glob, or a regex with ``matcher="pcre"``."""
    if pattern is None:
        return True
    if matcher == "pcre":
        import re

        return re.match(pattern, hostname) is not None
    import fnmatch

    return fnmatch.fnmatchcase(hostname, pattern)


def is_addressed_to(message: ControlMessage, hostname: str) -> bool:
    """Whether a control request is meant for the worker named ``hostname``."""
    if message.destination is not None and hostname not in message.destination:
        return False
    return name_matches(hostname, message.pattern, message.matcher)


def client_name() -> str:
    import os
    import socket

    return f"client:{os.getpid()}@{socket.gethostname()}"


async def event_cursor(app: Celery) -> str | None:
    """The id of the newest event (None when the log is empty): read after it to see only what comes next."""
    newest = await (await app.clients()).control.read_events(None, 1)
    return newest[-1][0] if newest else None


async def control_cursor(app: Celery) -> str | None:
    """The id of the newest control record (None when the log is empty): read after it to
    see only the requests and replies that come next."""
    newest = await (await app.clients()).control.read_control(None, 1)
    return newest[-1][0] if newest else None


async def _read_after(app: Celery, cursor: str | None, prefix: bytes) -> tuple[list[ControlMessage], str | None]:
    """The control records of one kind after ``cursor``, and the cursor to read after next."""
    control = (await app.clients()).control
    found: list[ControlMessage] = []
    while True:
        batch = await control.read_control(cursor, READ_BATCH)
        if not batch:
            return found, cursor
        cursor = batch[-1][0]
        for _, raw in batch:
            if raw.startswith(prefix):  # requests and replies share the log: skip the other kind undecoded
                try:
                    found.append(decode_control(raw))
                except msgspec.DecodeError:
                    continue
        if len(batch) < READ_BATCH:
            return found, cursor


async def control_requests(app: Celery, cursor: str | None) -> tuple[list[ControlMessage], str | None]:
    """Control requests written after ``cursor`` (a worker's), oldest first, and the next cursor."""
    return await _read_after(app, cursor, _REQUEST_PREFIX)


async def reply_control(app: Celery, hostname: str, request_id: str, answer: Any) -> None:
    """Append a worker's reply to a control request."""
    record = ControlMessage(type=CONTROL_REPLY, ts=time.time(), hostname=hostname, request_id=request_id,
                            answer=answer)
    await (await app.clients()).control.emit_control([encode_control(record)])


async def send_control(
    app: Celery, command: str, arguments: dict[str, Any] | None = None, *,
    destination: Sequence[str] | None = None, pattern: str | None = None, matcher: str | None = None,
    reply: bool = False,
) -> tuple[str, str | None]:
    """Append a control request; return its id and the control log's position noted just before it."""
    cursor = await control_cursor(app)
    request_id = uuid.uuid4().hex
    record = ControlMessage(
        type=CONTROL_REQUEST, ts=time.time(), hostname=client_name(), request_id=request_id,
        command=command, arguments=dict(arguments or {}),
        destination=list(destination) if destination is not None else None,
        pattern=pattern, matcher=matcher, reply=reply,
    )
    await (await app.clients()).control.emit_control([encode_control(record)])
    return request_id, cursor


async def collect_replies(
    app: Celery, request_id: str, cursor: str | None, *, timeout: float = 1.0,
    expected: set[str] | None = None, limit: int | None = None,
    callback: Callable[[dict[str, Any]], Any] | None = None,
) -> list[dict[str, Any]]:
    """The replies to one request, as ``[{hostname: answer}, ...]`` in the order they came.

    Stops at ``timeout``, after ``limit`` replies, or once every host in ``expected``
    (when it is not empty) has answered. ``callback`` gets each reply as it comes.
    """
    replies: list[dict[str, Any]] = []
    answered: set[str] = set()
    deadline = time.monotonic() + timeout
    pause_s = REPLY_POLL_S[0]
    while True:
        found, cursor = await _read_after(app, cursor, _REPLY_PREFIX)
        for message in found:
            if message.request_id != request_id:
                continue
            reply = {message.hostname: message.answer}
            replies.append(reply)
            answered.add(message.hostname)
            if callback is not None:
                callback(reply)
        if limit is not None and len(replies) >= limit:
            return replies[:limit]
        if expected and expected <= answered:
            return replies
        left_s = deadline - time.monotonic()
        if left_s <= 0:
            return replies
        await asyncio.sleep(min(pause_s, left_s))
        pause_s = min(pause_s * 2, REPLY_POLL_S[1])


async def broadcast(
    app: Celery, command: str, arguments: dict[str, Any] | None = None, *,
    destination: Sequence[str] | None = None, pattern: str | None = None, matcher: str | None = None,
    reply: bool = False, timeout: float = 1.0, limit: int | None = None,
    callback: Callable[[dict[str, Any]], Any] | None = None,
) -> list[dict[str, Any]] | None:
    """Send a control command to the workers; with ``reply``, their answers (else None).

    Without a ``destination``, the wait ends early once every worker that sent a
    heartbeat recently has answered; with one, once each named worker has.
    """
    request_id, cursor = await send_control(app, command, arguments, destination=destination, pattern=pattern,
                                            matcher=matcher, reply=reply)
    if not reply:
        return None
    if destination is not None:
        expected = set(destination)
    else:
        expected = {host for host in await live_workers(app) if name_matches(host, pattern, matcher)}
    return await collect_replies(app, request_id, cursor, timeout=timeout, expected=expected, limit=limit,
                                 callback=callback)
