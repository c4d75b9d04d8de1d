"""What the worker writes for tasks that were replaced (``Task.replace``).

A replaced task's id stays the id its caller waits on, but the broker holds that id until
the replaced task is acknowledged, and follow-ups are sent with their ids remembered
(``unique_for_s``), so the replacement cannot reuse it as Celery's does. Instead the
replacement's final task carries, in its ``celeriac_replaces`` header, the task(s) it
stands in for (``{"id", "token", "chord", "group", "group_index"}``, newest first), and
the worker writes that task's outcome under each of those ids too; a replaced chord
member is counted in its chord under its own id. When a failure means the final task
will never run (an earlier step of the replacing chain failed, or a member of the
replacing chord did), the replaced ids get that failure, so nobody waits forever.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from ..message import FAILURE, Envelope, ResultRecord
from ..task import REPLACES_HEADER, outcome_record

__all__ = ["REPLACES_HEADER", "envelope_for", "failure_for", "pending_in", "record_for", "stands_for"]


def stands_for(headers: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The replaced tasks a message's task stands in for (empty for almost every message)."""
    if not headers:
        return []
    entries = headers.get(REPLACES_HEADER)
    return [e for e in entries if isinstance(e, dict) and e.get("id")] if isinstance(entries, list) else []


def record_for(entry: dict[str, Any], record: ResultRecord) -> ResultRecord:
    """``record`` (the replacement's outcome) as the replaced task's."""
    chord = entry.get("chord") or {}
    return msgspec.structs.replace(
        record, task_id=str(entry["id"]), fencing_token=int(entry.get("token") or 0), children=[],
        group_id=chord.get("group_id") or entry.get("group") or record.group_id)


def failure_for(entry: dict[str, Any], exc: BaseException | None, tb: str | None) -> ResultRecord:
    """The replaced task's FAILURE when its replacement will never finish."""
    chord = entry.get("chord") or {}
    return outcome_record(str(entry["id"]), FAILURE, name=None, exc=exc, tb=tb, token=int(entry.get("token") or 0),
                          group_id=chord.get("group_id") or entry.get("group"))


def envelope_for(entry: dict[str, Any], envelope: Envelope) -> Envelope:
    """The replaced task's message, as far as a chord needs it to count the member."""
    return msgspec.structs.replace(envelope, id=str(entry["id"]), chord=entry.get("chord"))


def pending_in(parts: Iterable[Any]) -> list[dict[str, Any]]:
    """The replaced tasks that parts of a canvas which will now never run stand in for."""
    found: dict[str, dict[str, Any]] = {}
    stack = [p for p in parts if p]
    while stack:
        part = stack.pop()
        if not isinstance(part, dict):
            continue
        options = part.get("options") or {}
        for entry in stands_for(options.get("headers")):
            found.setdefault(str(entry["id"]), entry)
        stack.extend(options.get("chain") or [])
        if part.get("subtask_type"):
            inner = part.get("kwargs") or {}
            stack.extend(inner.get("tasks") or [])
            stack.extend(inner[key] for key in ("header", "body") if inner.get(key))
    return list(found.values())
