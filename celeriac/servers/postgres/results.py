"""``postgresql://`` result store, in the same database (and schema) as the broker.

Records are the msgspec JSON of ``ResultRecord`` in ``{schema}.results``, written by
upserts that refuse a lower fencing token (``sql/results.sql``). Writing a ready record
notifies the results channel with the task id; ``wait_ready`` listens there (only while
someone waits) and looks again on each notice, with a slow poll as a safety net. With the
broker on the same URL the store shares its pool, and the broker writes results within
its acks. Expired rows are deleted by housekeeping (``housekeeping.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...message import READY_STATES, GroupProgress, ResultRecord, decode_record, encode_record
from ..shared import OnSharedConnection
from ..waiting import wait_for_ready_record
from .connection import PostgresConnection, result_key

FETCH_CHUNK = 1000  # ids per statement
SAFETY_POLL_S = (2.0, 5.0)  # wait_ready's look-again bounds while notices arrive
BLIND_POLL_S = (0.02, 0.5)  # ... and while the listener is down


def expires_ms(expires_s: float | None) -> int | None:
    return max(1, int(expires_s * 1000)) if expires_s else None


def _wins(new: ResultRecord, old: ResultRecord) -> bool:
    """The fence of results.sql: whether ``new`` replaces ``old``."""
    if new.fencing_token != old.fencing_token:
        return new.fencing_token > old.fencing_token
    return new.state in READY_STATES or old.state not in READY_STATES


def result_params(records: Sequence[ResultRecord]) -> tuple[dict[str, Any], list[str]]:
    """The result arrays of a statement, and the ids it refuses before it is sent.

    One upsert cannot touch a row twice, so of several records of one id only the one
    that would stand after writing them in turn is sent; the others are refused as that
    sequence would refuse them.
    """
    kept: dict[str, ResultRecord] = {}
    refused: list[str] = []
    for record in records:
        current = kept.get(record.task_id)
        if current is None or _wins(record, current):
            kept[record.task_id] = record
        else:
            refused.append(record.task_id)
    values = list(kept.values())
    return {
        "result_ids": [r.task_id for r in values],
        "result_ready": [r.state in READY_STATES for r in values],
        "result_tokens": [r.fencing_token for r in values],
        "records": [encode_record(r) for r in values],
    }, refused


class PostgresResultStore(OnSharedConnection[PostgresConnection]):
    def __init__(
        self, url: str, expires_s: float | None = 86400.0, connection: PostgresConnection | None = None
    ) -> None:
        self.url = url
        self.expires_s = expires_s
        self.connection = connection if connection is not None else PostgresConnection(url)

    async def store(self, records: Sequence[ResultRecord]) -> list[str]:
        if not records:
            return []
        await self.connection.housekeeping.run_if_due()
        values, refused = result_params(records)
        [row] = await self.connection.fetch("store", {**values, "expires_ms": expires_ms(self.expires_s)})
        self._notify(records)
        return refused + list(row[0])

    async def fetch(self, task_id: str) -> ResultRecord | None:
        return (await self.fetch_many([task_id])).get(task_id)

    async def fetch_many(self, task_ids: Sequence[str]) -> dict[str, ResultRecord]:
        found: dict[str, ResultRecord] = {}
        ids = list(dict.fromkeys(task_ids))
        for start in range(0, len(ids), FETCH_CHUNK):
            rows = await self.connection.fetch("fetch", {"task_ids": ids[start : start + FETCH_CHUNK]})
            for (raw,) in rows:
                record = decode_record(raw)
                found[record.task_id] = record
        return found

    async def wait_ready(self, task_id: str, timeout_s: float | None) -> ResultRecord | None:
        record = await self.fetch(task_id)
        if (record is not None and record.state in READY_STATES) or (timeout_s is not None and timeout_s <= 0):
            return record  # ready already: no need to listen
        listener = self.connection.listener
        live = await listener.hold_results()
        try:
            return await wait_for_ready_record(lambda: self.fetch(task_id), self.connection.notifier,
                                               result_key(task_id), timeout_s,
                                               SAFETY_POLL_S if live else BLIND_POLL_S)
        finally:
            await listener.release_results()

    async def forget(self, task_id: str) -> None:
        await self.connection.execute("forget", {"task_id": task_id})

    async def record_group_member(
        self, group_id: str, member_id: str, total: int, record: ResultRecord
    ) -> GroupProgress:
        # Not sent again after a lost reply: a first attempt that ran may have been the one
        # that completed the group, and a second would report it as not newly complete.
        [row] = await self.connection.fetch("record_group_member", {
            "group_id": group_id, "member_id": member_id, "task_id": record.task_id,
            "is_ready": record.state in READY_STATES, "token": record.fencing_token,
            "record": encode_record(record), "expires_ms": expires_ms(self.expires_s),
        }, retry=False)
        done, added = int(row[0]), int(row[1])
        self._notify([record])
        return GroupProgress(done, total, bool(added) and done >= total > done - 1)

    async def save_group(self, group_id: str, member_ids: Sequence[str]) -> None:
        await self.connection.execute("save_group", {
            "group_id": group_id, "member_ids": list(member_ids), "expires_ms": expires_ms(self.expires_s),
        })

    async def restore_group(self, group_id: str) -> list[str] | None:
        rows = await self.connection.fetch("restore_group", {"group_id": group_id})
        return None if not rows else list(rows[0][0])

    def _notify(self, records: Sequence[ResultRecord]) -> None:
        """Wake this process's waiters at once; others wake on the database's notice."""
        for record in records:
            if record.state in READY_STATES:
                self.connection.notifier.notify(result_key(record.task_id))
