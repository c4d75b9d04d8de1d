"""The event log: what happened to tasks and workers, kept in the broker, capped.

Workers append task outcomes (with when they were received and started) in the same
flush as their acks, and a heartbeat from the lease keeper's thread listing the tasks
they hold. ``celeriac events``, ``celeriac inspect`` and the dashboard read it back.
Events are a view for people, not a source of truth: the broker and result store are.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

TASK_SUCCEEDED = "task-succeeded"
TASK_FAILED = "task-failed"
TASK_RETRIED = "task-retried"
TASK_REVOKED = "task-revoked"
TASK_REJECTED = "task-rejected"
WORKER_ONLINE = "worker-online"
WORKER_HEARTBEAT = "worker-heartbeat"
WORKER_OFFLINE = "worker-offline"


class Event(msgspec.Struct, omit_defaults=True, kw_only=True):
    type: str
    ts: float  # epoch seconds
    hostname: str
    task_id: str | None = None
    name: str | None = None
    queue: str | None = None
    received_ts: float | None = None
    started_ts: float | None = None
    runtime_s: float | None = None
    retries: int = 0
    exception: str | None = None
    result: str | None = None  # a short repr, for people
    held: list[str] | None = None  # on heartbeats: task ids this worker holds now
    processed: int | None = None
    concurrency: int | None = None
    pid: int | None = None


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Event)


def encode_event(event: Event) -> bytes:
    return _encoder.encode(event)


def decode_event(raw: bytes) -> Event:
    return _decoder.decode(raw)


def task_event(kind: str, hostname: str, task_id: str, name: str, **fields: Any) -> bytes:
    return encode_event(Event(type=kind, ts=time.time(), hostname=hostname, task_id=task_id, name=name,
                              **fields))


def worker_event(kind: str, hostname: str, **fields: Any) -> bytes:
    return encode_event(Event(type=kind, ts=time.time(), hostname=hostname, **fields))
