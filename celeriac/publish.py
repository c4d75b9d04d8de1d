"""Turning a call (task name, arguments, options) into a message ready for the broker.

Everything that can fail on bad input (an argument that is not serialisable, a priority
out of range) fails here, in the caller, before any I/O.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

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
})


def to_epoch_ms(when: dt.datetime) -> int:
    if when.tzinfo is None:  # naive means UTC, as with Celery's enable_utc default
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1000)


def build_message(
    app: Celery, name: str, args: Iterable[Any] | None, kwargs: dict[str, Any] | None,
    options: dict[str, Any], task_options: dict[str, Any] | None = None,
) -> tuple[OutgoingMessage, AsyncResult[Any]]:
    conf = app.conf
    args = list(args or ())
    kwargs = dict(kwargs or {})
    if options and not KNOWN_OPTIONS.issuperset(options):
        unknown = sorted(set(options) - KNOWN_OPTIONS)
        raise TypeError(f"apply_async() got unknown option(s) {unknown} for task {name!r}")
    merged = dict(task_options or {})
    merged.update(route(conf.get("task_routes"), name, args, kwargs, options))
    merged.update({k: v for k, v in options.items() if v is not None})

    now = time.time()
    now_ms = int(now * 1000)
    eta_ms = None
    if merged.get("countdown") is not None:
        eta_ms = now_ms + int(float(merged["countdown"]) * 1000)
    elif merged.get("eta") is not None:
        eta = merged["eta"]
        eta_ms = to_epoch_ms(eta) if isinstance(eta, dt.datetime) else int(float(eta) * 1000)
    expires_ms = None
    expires = merged.get("expires")
    if isinstance(expires, dt.datetime):
        expires_ms = to_epoch_ms(expires)
    elif isinstance(expires, dt.timedelta):
        expires_ms = now_ms + int(expires.total_seconds() * 1000)
    elif expires is not None:
        expires_ms = now_ms + int(float(expires) * 1000)

    priority = merged.get("priority")
    priority = conf.task_default_priority if priority is None else int(priority)
    if not 0 <= priority <= 9:
        raise ConfigurationError(f"priority {priority} for task {name!r} is out of range; use 0-9 (9 runs first)")
    queue = merged.get("queue") or merged.get("routing_key") or conf.task_default_queue
    if isinstance(queue, dict):  # kombu Queue-like objects are not supported; a name is
        queue = queue.get("name")
    ignore_result = merged.get("ignore_result")
    if ignore_result is None:
        ignore_result = bool(conf.task_ignore_result)
    serializer = merged.get("serializer") or conf.task_serializer
    task_id = merged.get("task_id") or str(uuid.uuid4())

    parent = current_request()
    parent_id = merged.get("parent_id") or (parent.id if parent else None)
    root_id = merged.get("root_id") or (parent.root_id if parent else None) or task_id

    envelope = Envelope(
        id=task_id, task=name, queue=str(queue), priority=priority, eta_ms=eta_ms,
        expires_ms=expires_ms, retries=int(merged.get("retries") or 0), root_id=root_id,
        parent_id=parent_id, group_id=merged.get("group_id"),
        group_index=merged.get("group_index"), ignore_result=bool(ignore_result),
        headers=dict(merged.get("headers") or {}), link=_signatures(merged.get("link")),
        link_error=_signatures(merged.get("link_error")), chord=merged.get("chord"),
        chain=_signatures(merged.get("chain")),
        time_limit=merged.get("time_limit"), soft_time_limit=merged.get("soft_time_limit"),
        serializer=serializer, shadow=merged.get("shadow"), sent_at_ms=now * 1000,
    )
    if serializer == "pickle":
        if "pickle" not in conf.accept_content:
            raise ConfigurationError(
                "serializer='pickle' needs 'pickle' in accept_content on the producer and the "
                "workers; JSON is safer: pass ids and plain data instead"
            )
        envelope.payload = dumps_pickle((args, kwargs))
    elif serializer == "json":
        envelope.args, envelope.kwargs = check_args(name, args, kwargs)
    else:
        raise ConfigurationError(f"serializer {serializer!r} is unknown; use 'json' or 'pickle'")
    body = encode_envelope(envelope)
    message = OutgoingMessage(task_id, envelope.queue, body, priority, eta_ms, merged.get("unique_for_s"))
    result: AsyncResult[Any] = AsyncResult(task_id, app=app, task_name=name, ignored=bool(ignore_result))
    return message, result


def _signatures(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else [value]
    return [to_wire(dict(item), "a link signature") for item in items]
