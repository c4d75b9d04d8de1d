"""The envelope a task travels in, what a broker hands a worker, and what a result holds.

One versioned schema, JSON on the wire. Times are epoch milliseconds so every process
and every broker reads them the same way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import msgspec

from .exceptions import SerializationError
from .serialization import MAX_DEPTH, find_unencodable, from_wire, loads_pickle, needs_from_wire, safe_text

ENVELOPE_VERSION = 1


class Envelope(msgspec.Struct, omit_defaults=True, kw_only=True):
    """One task message. Unknown fields are ignored so newer producers can add some."""

    v: int = ENVELOPE_VERSION
    id: str
    task: str
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    queue: str = "celery"
    priority: int = 0
    eta_ms: int | None = None
    expires_ms: int | None = None
    retries: int = 0
    root_id: str | None = None
    parent_id: str | None = None
    group_id: str | None = None
    group_index: int | None = None
    ignore_result: bool = False
    headers: dict[str, Any] = {}
    link: list[dict[str, Any]] = []
    link_error: list[dict[str, Any]] = []
    chord: dict[str, Any] | None = None  # on a chord header member: group_id, total, body
    chain: list[dict[str, Any]] = []  # the steps still to run after this one, in order
    time_limit: float | None = None
    soft_time_limit: float | None = None
    serializer: str = "json"
    payload: str | None = None  # pickled (args, kwargs) when serializer == "pickle"
    shadow: str | None = None
    sent_at_ms: float = 0.0


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Envelope)


def encode_envelope(envelope: Envelope) -> bytes:
    """Encode a message; a part JSON cannot hold raises ``SerializationError`` naming it."""
    try:
        return _encoder.encode(envelope)
    except (UnicodeEncodeError, TypeError, ValueError, RecursionError) as exc:
        # Only the failure path walks the message to say which part is at fault.
        parts: list[tuple[str, Any]] = [("the task id", envelope.id), ("the task name", envelope.task),
                                        ("the queue name", envelope.queue)]
        parts += [(f"argument {i} of {envelope.task}", arg) for i, arg in enumerate(envelope.args)]
        parts += [(f"keyword argument {safe_text(repr(k))} of {envelope.task}", v) for k, v in envelope.kwargs.items()]
        parts += [(f"the name of keyword argument {i} of {envelope.task}", k) for i, k in enumerate(envelope.kwargs)]
        parts += [("the headers", envelope.headers),
                  ("a link", envelope.link), ("a link_error", envelope.link_error),
                  ("the chord options", envelope.chord), ("the chain", envelope.chain)]
        for where, value in parts:
            reason = find_unencodable(value, where)
            if reason:
                raise SerializationError(reason) from None
        raise SerializationError(f"the message for {safe_text(envelope.task)} cannot be encoded: {exc}") from exc


def decode_envelope(raw: bytes, accept_content: frozenset[str]) -> Envelope:
    """Decode a message; raises ``SerializationError`` with the reason if it is unusable.

    Whatever is wrong with the bytes (malformed JSON, wrong types, a bad tagged value,
    nesting too deep, a pickle that fails to load), the error is a ``SerializationError``:
    the worker dead-letters that one message and goes on.
    """
    try:
        return _decode_envelope(raw, accept_content)
    except SerializationError:
        raise
    except RecursionError:
        raise SerializationError("malformed message: nested too deeply to decode") from None
    except Exception as exc:
        raise SerializationError(f"malformed message: {safe_text(repr(exc))}") from exc


def _decode_envelope(raw: bytes, accept_content: frozenset[str]) -> Envelope:
    try:
        envelope = _decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise SerializationError(f"malformed message: {safe_text(str(exc))}") from exc
    # Up to Python 3.11 msgspec refuses deep JSON by the recursion limit; from 3.12 it
    # decodes any depth, so look, when the bytes hold enough brackets to be that deep.
    # The bound is the producer's (each argument under MAX_DEPTH levels) plus the two
    # levels of this list and of args/kwargs around an argument.
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and _nests_deeper_than(
            [envelope.args, envelope.kwargs, envelope.headers, envelope.link, envelope.link_error,
             envelope.chain, envelope.chord], MAX_DEPTH + 1):
        raise SerializationError("malformed message: nested too deeply to decode")
    if envelope.v > ENVELOPE_VERSION:
        raise SerializationError(
            f"message schema version {envelope.v} is newer than this worker's "
            f"({ENVELOPE_VERSION}); upgrade the worker"
        )
    if envelope.serializer not in accept_content:
        raise SerializationError(
            f"message uses serializer {safe_text(repr(envelope.serializer))}, which this worker does not "
            f"accept (accept_content={sorted(accept_content)})"
        )
    if envelope.serializer == "pickle":
        if envelope.payload is None:
            raise SerializationError("pickle message without a payload")
        args, kwargs = loads_pickle(envelope.payload)
        envelope.args, envelope.kwargs = list(args), dict(kwargs)
    elif needs_from_wire(raw):
        envelope.args = from_wire(envelope.args)
        envelope.kwargs = from_wire(envelope.kwargs)
    if (envelope.link or envelope.link_error or envelope.chain or envelope.chord) and needs_from_wire(raw):
        # The signatures it carries (callbacks, the rest of a chain, a chord's body) are in
        # wire form whatever the serializer: their arguments become real values again.
        envelope.link, envelope.link_error = from_wire(envelope.link), from_wire(envelope.link_error)
        envelope.chain, envelope.chord = from_wire(envelope.chain), from_wire(envelope.chord)
    return envelope


def _nests_deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` holds containers more than ``limit`` levels down (walked without recursion)."""
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, (list, dict)):
            if depth > limit:
                return True
            pending.extend((inner, depth + 1) for inner in (item.values() if isinstance(item, dict) else item))
    return False


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True)
class Delivery:
    """A reserved message: its bytes plus what proves this worker holds it.

    ``fencing_token`` is the message's delivery count at reservation. Ack, renew, retry
    and result writes name it; the broker refuses them once another delivery exists.
    """

    task_id: str
    queue: str
    body: bytes
    fencing_token: int
    lease_expires_at_ms: int = 0
    # Whether the id was revoked, when the broker checked it while reserving (None: it
    # did not, and the worker asks with revoked_among()).
    is_revoked: bool | None = None


@dataclass(slots=True)
class DeadLetter:
    task_id: str
    queue: str
    body: bytes
    reason: str
    failed_at_ms: int
    # Kept so a requeued message goes on with higher fencing tokens (a result written by
    # an earlier delivery must not outrank the next one) and its own priority.
    delivery_count: int = 0
    priority: int = 0


# Task states, as Celery names them.
PENDING = "PENDING"
RECEIVED = "RECEIVED"
STARTED = "STARTED"
RETRY = "RETRY"
SUCCESS = "SUCCESS"
FAILURE = "FAILURE"
REVOKED = "REVOKED"
READY_STATES = frozenset({SUCCESS, FAILURE, REVOKED})
UNREADY_STATES = frozenset({PENDING, RECEIVED, STARTED, RETRY})
EXCEPTION_STATES = frozenset({FAILURE, RETRY, REVOKED})


class ResultRecord(msgspec.Struct, omit_defaults=True, kw_only=True):
    """What the result store holds for one task id."""

    task_id: str
    state: str
    result: Any = None  # the return value in wire form, when SUCCESS
    exc_type: str | None = None  # "module.QualName" of the exception
    exc_message: str | None = None
    exc_args: list[Any] | None = None  # the exception's args in wire form, when JSON holds them
    traceback: str | None = None
    date_done_ms: int | None = None
    date_started_ms: int | None = None  # when the attempt that wrote this record started
    name: str | None = None
    args: list[Any] | None = None  # only with result_extended (the app's, or the task's own)
    kwargs: dict[str, Any] | None = None
    headers: dict[str, Any] | None = None  # the message's headers, with result_extended
    retries: int = 0
    worker: str | None = None
    parent_id: str | None = None
    group_id: str | None = None
    children: list[str] = []
    fencing_token: int = 0


_record_encoder = msgspec.json.Encoder()
_record_decoder = msgspec.json.Decoder(ResultRecord)


def encode_record(record: ResultRecord) -> bytes:
    return _record_encoder.encode(record)


def decode_record(raw: bytes | str) -> ResultRecord:
    return _record_decoder.decode(raw)


@dataclass(slots=True)
class GroupProgress:
    """What recording one chord/group member returned."""

    done_count: int
    total: int
    is_newly_complete: bool  # True for exactly one caller: the one whose member completed it
    member_ids: list[str] = field(default_factory=list)
