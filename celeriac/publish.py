"""Turning a call (task name, arguments, options) into a message ready for the broker.

Everything that can fail on bad input (an argument that is not serialisable, a priority
out of range) fails here, in the caller, before any I/O.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, overload

import msgspec

from .context import current_request
from .exceptions import ConfigurationError
from .message import Envelope, encode_envelope
from .result import AsyncResult
from .routing import route
from .serialization import check_args, dumps_pickle, to_wire
from .servers.contracts import OutgoingMessage

if TYPE_CHECKING:
    from .app import Celery

KNOWN_OPTIONS = frozenset({
    "task_id", "countdown", "eta", "expires", "queue", "routing_key", "priority",
    "ignore_result", "link", "link_error", "headers", "shadow", "time_limit",
    "soft_time_limit", "retry", "retry_policy", "serializer", "parent_id", "root_id",
    "group_id", "group_index", "chord", "on_duplicate", "exchange", "producer", "connection",
    "add_to_parent", "compression", "retries", "immutable", "subtask_type", "publisher",
    "reply_to", "delivery_mode", "mandatory", "stamped_headers", "chain", "unique_for_s",
    # Celery's options kept in the headers (HEADER_OPTIONS, PROPERTY_OPTIONS, stamps), or
    # accepted with no effect (the rest).
    "argsrepr", "kwargsrepr", "app_id", "correlation_id", "replaced_task_nesting", "stamps",
    "content_type", "content_encoding", "user_id", "message_id", "expiration", "timeout",
    "task_type", "result_cls",
})
# Calling options a task reads back from its request (``self.request.argsrepr`` ...), kept
# in the message's headers under their own names; ``self.request.headers`` leaves them out.
HEADER_OPTIONS = ("argsrepr", "kwargsrepr", "replaced_task_nesting")
# Celery's message properties: ``self.request.properties`` (and ``.reply_to``, ``.correlation_id``).
PROPERTY_OPTIONS = ("app_id", "reply_to", "correlation_id")


def to_epoch_ms(when: dt.datetime) -> int:
    if when.tzinfo is None:  # naive means UTC, as with Celery's enable_utc default
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1000)


def build_message(
    app: Celery, name: str, args: Iterable[Any] | None, kwargs: dict[str, Any] | None,
    options: dict[str, Any], task_options: dict[str, Any] | None = None,
) -> tuple[OutgoingMessage, AsyncResult[Any]]:
    """The message for one call, and the result that will track it; no I/O."""
    args, kwargs = list(args or ()), dict(kwargs or {})
    shape = MessageBuilder(app, name, options, task_options).shape(args, kwargs)
    message = shape.message(args, kwargs)
    result: AsyncResult[Any] = AsyncResult(message.task_id, app=app, task_name=name, ignored=shape.ignore_result)
    return message, result


class MessageBuilder:
    """The messages of calls to one task that share their options: one ``delay()``, or the
    plain members of a group, each with its own arguments, id and place in the group.

    What the calls share (the merged options and route, the headers, the links in wire
    form, the envelope's other fields) is worked out once, into a ``MessageShape``; each
    message then costs its arguments' check and its encoding. Working it all out again for
    each member was most of the time a group of 5,000 took to send. A router function in
    ``task_routes`` sees each call's arguments, so with one the shape is made per call.
    """

    def __init__(self, app: Celery, name: str, options: dict[str, Any],
                 task_options: dict[str, Any] | None = None) -> None:
        self.app, self.name = app, name
        self.options, self.task_options = options, task_options
        self.sent_at = time.time()
        self.parent = current_request()
        self._shared: MessageShape | None = None
        self._per_call = _routes_see_arguments(app.settings.task_routes)

    def shape(self, args: list[Any], kwargs: dict[str, Any]) -> MessageShape:
        """What the message of a call with these arguments shares with the others."""
        if self._per_call:
            return self._make_shape(args, kwargs)
        if self._shared is None:
            self._shared = self._make_shape(args, kwargs)
        return self._shared

    def _make_shape(self, args: list[Any], kwargs: dict[str, Any]) -> MessageShape:
        conf = self.app.settings
        name = self.name
        merged = merge_options(conf, name, args, kwargs, self.options, self.task_options)
        now_ms = int(self.sent_at * 1000)
        ignore_result = merged.get("ignore_result")
        if ignore_result is None:
            ignore_result = conf.task_ignore_result
        parent = self.parent
        template = Envelope(
            id="", task=name, queue=queue_of(merged, conf.task_default_queue),
            priority=priority_of(merged, conf.task_default_priority, name),
            eta_ms=eta_ms_of(merged, now_ms), expires_ms=expires_ms_of(merged.get("expires"), now_ms),
            retries=int(merged.get("retries") or 0),
            parent_id=merged.get("parent_id") or (parent.id if parent else None), group_id=merged.get("group_id"),
            group_index=merged.get("group_index"), ignore_result=bool(ignore_result),
            headers=protocol_headers(merged), link=_signatures(merged.get("link")),
            link_error=_signatures(merged.get("link_error")), chord=_chord_info(merged.get("chord")),
            chain=_signatures(merged.get("chain")),
            time_limit=merged.get("time_limit"), soft_time_limit=merged.get("soft_time_limit"),
            serializer=merged.get("serializer") or conf.task_serializer, shadow=merged.get("shadow"),
            sent_at_ms=self.sent_at * 1000,
        )
        root_id = merged.get("root_id") or (parent.root_id if parent else None)
        return MessageShape(template, merged.get("task_id"), root_id, merged.get("unique_for_s"),
                            bool(ignore_result), conf.accept_content)


@dataclass(slots=True)
class MessageShape:
    """Everything of a message but its id, arguments and place in a group."""

    template: Envelope  # with an empty id
    task_id: str | None  # the call's own task_id option
    root_id: str | None  # None: each message is the root of its own work
    unique_for_s: float | None
    ignore_result: bool
    accept_content: Any

    def message(self, args: list[Any], kwargs: dict[str, Any], task_id: str | None = None,
                group_index: int | None = None) -> OutgoingMessage:
        """The message of one call; a bad argument raises, naming it."""
        task_id = task_id or self.task_id or new_task_id()
        envelope = msgspec.structs.replace(self.template, id=task_id, root_id=self.root_id or task_id)
        if group_index is not None:
            envelope.group_index = group_index
        put_arguments(envelope, args, kwargs, self.accept_content)
        return OutgoingMessage(task_id, envelope.queue, encode_envelope(envelope), envelope.priority,
                               envelope.eta_ms, self.unique_for_s)


class Outgoing(Sequence[OutgoingMessage]):
    """The messages of one send, in order; some built only as a broker reads them.

    A large group's plain members are added as a generator (``add_lazily``): the
    PostgreSQL broker writes each message to its COPY while the next is built, so the
    server stores the first ones while the caller encodes the rest, where building them
    all first made the two wait for each other. Read again (or by index), what was built
    is kept. An exception raised while building (a bad argument) reaches the broker while
    it reads: every broker reads the whole batch before it writes, or writes it in a
    transaction that the exception rolls back, so nothing of the batch is published.
    """

    def __init__(self) -> None:
        self._built: list[OutgoingMessage] = []
        self._pending: list[Iterator[OutgoingMessage]] = []  # lazy sources, in order
        self._count = 0

    def append(self, message: OutgoingMessage) -> None:
        if self._pending:  # after lazy messages: read in order
            self._pending.append(iter((message,)))
        else:
            self._built.append(message)
        self._count += 1

    def add_lazily(self, count: int, messages: Iterator[OutgoingMessage]) -> None:
        """Add ``count`` messages that ``messages`` builds when they are read."""
        self._pending.append(messages)
        self._count += count

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[OutgoingMessage]:
        yield from self._built
        while self._pending:
            for message in self._pending[0]:  # left where it was if the reader stops
                self._built.append(message)
                yield message
            self._pending.pop(0)

    @overload
    def __getitem__(self, index: int) -> OutgoingMessage: ...
    @overload
    def __getitem__(self, index: slice) -> list[OutgoingMessage]: ...
    def __getitem__(self, index: int | slice) -> OutgoingMessage | list[OutgoingMessage]:
        for _ in self:  # everything built
            pass
        return self._built[index]


def new_task_id() -> str:
    return new_task_ids(1)[0]


_VARIANT = "89ab" * 4  # the variant nibble: its top bits are 10 (RFC 4122)


def new_task_ids(count: int) -> list[str]:
    """``count`` ids as ``str(uuid.uuid4())`` makes them, from one read of the system's
    randomness: a group's members get theirs in under half the time uuid4() takes each."""
    hexes = os.urandom(16 * count).hex()
    return [f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[int(h[16], 16)]}{h[17:20]}-{h[20:]}"
            for h in (hexes[i:i + 32] for i in range(0, 32 * count, 32))]


def _routes_see_arguments(routes: Any) -> bool:
    """Whether ``task_routes`` holds a router function (it is given each call's arguments)."""
    routers = routes if isinstance(routes, (list, tuple)) else [routes]
    return any(callable(r) and not isinstance(r, Mapping) for r in routers if r is not None)


def merge_options(conf: Any, name: str, args: list[Any], kwargs: dict[str, Any], options: dict[str, Any],
                  task_options: dict[str, Any] | None) -> dict[str, Any]:
    """The task's options, then its route, then the call's own (those given as None left out).

    ``conf`` is ``app.settings`` (or ``app.conf``): only its ``task_routes`` is read.
    """
    if options and not KNOWN_OPTIONS.issuperset(options):
        # A stamped header is an option named by stamped_headers (Celery's stamping).
        unknown = sorted(set(options) - KNOWN_OPTIONS - set(options.get("stamped_headers") or ()))
        if unknown:
            raise TypeError(f"apply_async() got unknown option(s) {unknown} for task {name!r}")
    merged = dict(task_options or {})
    merged.update(route(conf.task_routes, name, args, kwargs, options))
    merged.update({k: v for k, v in options.items() if v is not None})
    return merged


def protocol_headers(merged: dict[str, Any]) -> dict[str, Any]:
    """The message's headers: the call's own, plus Celery's options a task reads back.

    ``argsrepr``, ``kwargsrepr`` and ``replaced_task_nesting`` under their names; ``app_id``,
    ``reply_to`` and ``correlation_id`` under ``properties``; stamps (``stamped_headers`` and
    the options it names) under ``stamped_headers`` and ``stamps``.
    """
    headers = dict(merged.get("headers") or {})
    for key in HEADER_OPTIONS:
        if merged.get(key) is not None:
            headers[key] = merged[key]
    properties = {key: merged[key] for key in PROPERTY_OPTIONS if merged.get(key) is not None}
    if properties:
        headers["properties"] = {**(headers.get("properties") or {}), **properties}
    stamped = merged.get("stamped_headers")
    if stamped:
        names = [stamped] if isinstance(stamped, str) else list(stamped)
        stamps = dict(headers.get("stamps") or merged.get("stamps") or {})
        stamps.update({n: merged[n] for n in names if n in merged})
        headers["stamped_headers"], headers["stamps"] = names, stamps
    return headers


def eta_ms_of(merged: dict[str, Any], now_ms: int) -> int | None:
    """When the message is due: ``countdown`` seconds from now, or ``eta`` (a datetime or epoch seconds)."""
    if merged.get("countdown") is not None:
        return now_ms + int(float(merged["countdown"]) * 1000)
    eta = merged.get("eta")
    if eta is None:
        return None
    return to_epoch_ms(eta) if isinstance(eta, dt.datetime) else int(float(eta) * 1000)


def expires_ms_of(expires: Any, now_ms: int) -> int | None:
    """``expires`` as a datetime, a timedelta or seconds from now, in epoch ms."""
    if expires is None:
        return None
    if isinstance(expires, dt.datetime):
        return to_epoch_ms(expires)
    if isinstance(expires, dt.timedelta):
        return now_ms + int(expires.total_seconds() * 1000)
    return now_ms + int(float(expires) * 1000)


def priority_of(merged: dict[str, Any], default: int, name: str) -> int:
    priority = merged.get("priority")
    priority = default if priority is None else int(priority)
    if not 0 <= priority <= 9:
        raise ConfigurationError(f"priority {priority} for task {name!r} is out of range; use 0-9 (9 runs first)")
    return priority


def queue_of(merged: dict[str, Any], default: str) -> str:
    queue = merged.get("queue") or merged.get("routing_key") or default
    if isinstance(queue, dict):  # kombu Queue-like objects are not supported; a name is
        queue = queue.get("name")
    return str(queue)


def put_arguments(envelope: Envelope, args: list[Any], kwargs: dict[str, Any], accept_content: Any) -> None:
    """Put the call's arguments into ``envelope`` in its serializer's form, naming a bad one."""
    if envelope.serializer == "pickle":
        if "pickle" not in accept_content:
            raise ConfigurationError(
                "serializer='pickle' needs 'pickle' in accept_content on the producer and the "
                "workers; JSON is safer: pass ids and plain data instead"
            )
        envelope.payload = dumps_pickle((args, kwargs))
    elif envelope.serializer == "json":
        envelope.args, envelope.kwargs = check_args(envelope.task, args, kwargs)
    else:
        raise ConfigurationError(f"serializer {envelope.serializer!r} is unknown; use 'json' or 'pickle'")


def _chord_info(value: Any) -> dict[str, Any] | None:
    """A chord member's counting information, its body in wire form (as link signatures are)."""
    if value is None:
        return None
    return to_wire(dict(value), "the chord's body")  # type: ignore[no-any-return]


def _signatures(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else [value]
    return [to_wire(dict(item), "a link signature") for item in items]
