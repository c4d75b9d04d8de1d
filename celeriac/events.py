"""The event log: what happened to tasks and workers, kept in the broker, capped.

Workers append, after a flush of their acks (one call at most every ``EVENT_BATCH_S``,
shared by the flushes in between; within ``EVENT_FLUSH_S`` when no ack is due, so a long
task's start shows while it runs: ``worker/completion.py``), ``task-received`` when a message is
handed to them (with when it was sent), ``task-started`` when its body starts (with
``wait_s``: from when it was sent, or its eta, to its start) and its outcome
(``task-succeeded``, ``-failed``, ``-retried``, ``-revoked``, ``-rejected``, with its
runtime), and a heartbeat from the lease keeper's thread listing the tasks they hold.
With ``task_send_sent_event`` on, the producer appends ``task-sent`` after publishing.
``celeriac events``, ``celeriac inspect`` and the dashboard read it back. Events are a
view for people, not a source of truth: the broker and result store are.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import msgspec

TASK_SENT = "task-sent"
TASK_RECEIVED = "task-received"
TASK_STARTED = "task-started"
TASK_SUCCEEDED = "task-succeeded"
TASK_FAILED = "task-failed"
TASK_RETRIED = "task-retried"
TASK_REVOKED = "task-revoked"
TASK_REJECTED = "task-rejected"
WORKER_ONLINE = "worker-online"
WORKER_HEARTBEAT = "worker-heartbeat"
WORKER_OFFLINE = "worker-offline"


class Event(msgspec.Struct, omit_defaults=True, kw_only=True, gc=False):  # no cycles: left out of the GC
    type: str
    ts: float  # epoch seconds
    hostname: str
    task_id: str | None = None
    name: str | None = None
    queue: str | None = None
    sent_ts: float | None = None  # when the message was sent (its envelope's sent_at_ms)
    eta_ts: float | None = None  # on task-sent and task-received: the eta it was sent with
    received_ts: float | None = None
    started_ts: float | None = None
    wait_s: float | None = None  # on task-started: from sent (or its eta, if later) to start
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
    return _encoder.encode(Event(type=kind, ts=time.time(), hostname=hostname, task_id=task_id, name=name,
                                 **fields))


# The events every task adds (received, outcome, started), built without ``**fields``: a
# worker writes them per task.
def received_event(hostname: str, task_id: str, name: str, queue: str, retries: int, sent_ts: float | None,
                   eta_ts: float | None) -> bytes:
    return _encoder.encode(Event(type=TASK_RECEIVED, ts=time.time(), hostname=hostname, task_id=task_id, name=name,
                                 queue=queue, retries=retries, sent_ts=sent_ts, eta_ts=eta_ts))


def outcome_event(kind: str, hostname: str, task_id: str, name: str, *, queue: str, started_ts: float,
                  runtime_s: float, retries: int, exception: str | None, result: str | None) -> bytes:
    return _encoder.encode(Event(type=kind, ts=time.time(), hostname=hostname, task_id=task_id, name=name,
                                 queue=queue, started_ts=started_ts, runtime_s=runtime_s, retries=retries,
                                 exception=exception, result=result))


def started_event(hostname: str, task_id: str, name: str, queue: str, retries: int, ts: float,
                  wait_s: float | None) -> bytes:
    return _encoder.encode(Event(type=TASK_STARTED, ts=ts, hostname=hostname, task_id=task_id, name=name,
                                 queue=queue, retries=retries, wait_s=wait_s))


def worker_event(kind: str, hostname: str, **fields: Any) -> bytes:
    return encode_event(Event(type=kind, ts=time.time(), hostname=hostname, **fields))


class _Sent(msgspec.Struct):
    """What a task-sent event needs from a message's body (read without decoding arguments)."""

    task: str = "?"
    retries: int = 0
    eta_ms: int | None = None
    sent_at_ms: float = 0.0


_sent_decoder = msgspec.json.Decoder(_Sent)


def sent_events(messages: Iterable[Any], hostname: str) -> list[bytes]:
    """``task-sent`` events for published messages (``OutgoingMessage``; ``task_send_sent_event``)."""
    now = time.time()
    out = []
    for message in messages:
        try:
            peek = _sent_decoder.decode(message.body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            peek = _Sent()
        out.append(encode_event(Event(
            type=TASK_SENT, ts=peek.sent_at_ms / 1000 if peek.sent_at_ms else now, hostname=hostname,
            task_id=message.task_id, name=peek.task, queue=message.queue, retries=peek.retries,
            sent_ts=peek.sent_at_ms / 1000 if peek.sent_at_ms else now,
            eta_ts=peek.eta_ms / 1000 if peek.eta_ms else None)))
    return out
