"""The result-store contract.

Writes carry the fencing token of the delivery that produced them: a store refuses a
write whose token is lower than the one it holds, so a worker whose lease was taken over
cannot overwrite the new holder's result. Recording a group member is one idempotent
step (a set of finished member ids), so chords count each member once however often it
runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable

from .._notify import Notifier, wait_for_notice
from ..message import READY_STATES, GroupProgress, ResultRecord


@runtime_checkable
class ResultStore(Protocol):
    url: str

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def store(self, records: Sequence[ResultRecord]) -> list[str]:
        """Write records (kept for ``result_expires``); return the ids refused as stale."""

    async def fetch(self, task_id: str) -> ResultRecord | None: ...

    async def fetch_many(self, task_ids: Sequence[str]) -> dict[str, ResultRecord]: ...

    async def wait_ready(self, task_id: str, timeout_s: float | None) -> ResultRecord | None:
        """Return the record once it is ready (or at ``timeout_s``, whatever it is then).

        Wakes on a notification where the store has one; otherwise polls with a bounded
        back-off.
        """

    async def forget(self, task_id: str) -> None: ...

    async def record_group_member(
        self, group_id: str, member_id: str, total: int, record: ResultRecord
    ) -> GroupProgress:
        """Store ``record`` and add ``member_id`` to the group's finished set, atomically.

        Idempotent: a member recorded twice counts once, and ``is_newly_complete`` is true
        for exactly one call, the one that made the set reach ``total``.
        """

    async def save_group(self, group_id: str, member_ids: Sequence[str]) -> None: ...

    async def restore_group(self, group_id: str) -> list[str] | None: ...


async def wait_for_ready_record(
    fetch: Callable[[], Awaitable[ResultRecord | None]], notifier: Notifier, key: str,
    timeout_s: float | None, poll_bounds_s: tuple[float, float] | None,
) -> ResultRecord | None:
    """The wait every store without server push shares.

    Subscribes to the in-process notifier before each look, so a write in this process
    wakes the waiter at once. ``poll_bounds_s`` (first, longest) adds a look with a
    doubling back-off for writers in other processes; None waits on notices alone.
    """
    loop = asyncio.get_running_loop()
    deadline = None if timeout_s is None else loop.time() + timeout_s
    poll_s = poll_bounds_s[0] if poll_bounds_s else None
    while True:
        notice = notifier.subscribe(key)
        try:
            record = await fetch()
            if record is not None and record.state in READY_STATES:
                return record
            remaining_s = 3600.0 if deadline is None else deadline - loop.time()
            if remaining_s <= 0:
                return record
            if poll_s is not None and poll_bounds_s is not None:
                await wait_for_notice(notice, min(poll_s, remaining_s))
                poll_s = min(poll_s * 2, poll_bounds_s[1])
            else:
                await wait_for_notice(notice, remaining_s)
        finally:
            notifier.unsubscribe(key, notice)
