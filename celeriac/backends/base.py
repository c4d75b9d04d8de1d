"""The result-store contract.

Writes carry the fencing token of the delivery that produced them: a store refuses a
write whose token is lower than the one it holds, so a worker whose lease was taken over
cannot overwrite the new holder's result. Recording a group member is one idempotent
step (a set of finished member ids), so chords count each member once however often it
runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ..message import GroupProgress, ResultRecord


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
