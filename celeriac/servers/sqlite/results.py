"""``sqlite:///path.db`` result store, in the same file as the SQLite broker.

Expired results, group members and saved groups are deleted by the database's
housekeeping pass (``database.py``); reads skip expired results until then.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from ...message import GroupProgress, ResultRecord, decode_record, now_ms
from ..queries import with_marks
from ..waiting import wait_for_ready_record
from .database import (
    SQLiteDatabase,
    notify_results,
    path_from_url,
    transaction,
    write_records,
)
from .statements import SQL  # the named blocks of sql/results.sql

MIN_POLL_S, MAX_POLL_S = 0.005, 0.25  # get() across processes: a bounded back-off


class SQLiteResultStore:
    def __init__(self, url: str, expires_s: float | None = 86400.0, db: SQLiteDatabase | None = None) -> None:
        self.url = url
        self.expires_s = expires_s
        self.db = db or SQLiteDatabase(path_from_url(url))

    async def connect(self) -> None:
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()

    async def store(self, records: Sequence[ResultRecord]) -> list[str]:
        def apply(conn: sqlite3.Connection) -> list[str]:
            return write_records(conn, records, self.expires_s)

        refused = await self.db.run(lambda conn: transaction(conn, apply))
        notify_results(self.db.notifier, records)
        return refused

    async def fetch(self, task_id: str) -> ResultRecord | None:
        return (await self.fetch_many([task_id])).get(task_id)

    async def fetch_many(self, task_ids: Sequence[str]) -> dict[str, ResultRecord]:
        ids = list(task_ids)

        def query(conn: sqlite3.Connection) -> list[bytes]:
            found: list[bytes] = []
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                found += [r[0] for r in conn.execute(
                    with_marks(SQL["fetch-results"], len(chunk)), (*chunk, now_ms()),
                )]
            return found

        records = [decode_record(raw) for raw in await self.db.run(query)]
        return {r.task_id: r for r in records}

    async def wait_ready(self, task_id: str, timeout_s: float | None) -> ResultRecord | None:
        return await wait_for_ready_record(lambda: self.fetch(task_id), self.db.notifier, f"result:{task_id}",
                                           timeout_s, (MIN_POLL_S, MAX_POLL_S))

    async def forget(self, task_id: str) -> None:
        await self.db.run(lambda conn: conn.execute(SQL["forget-result"], (task_id,)))

    async def record_group_member(
        self, group_id: str, member_id: str, total: int, record: ResultRecord
    ) -> GroupProgress:
        def apply(conn: sqlite3.Connection) -> GroupProgress:
            write_records(conn, [record], self.expires_s)
            before = _member_count(conn, group_id)
            # The row expires with the member's result (written just now, with the same expiry).
            expires = now_ms() + int(self.expires_s * 1000) if self.expires_s else None
            conn.execute(SQL["add-group-member"], (group_id, member_id, expires))
            after = _member_count(conn, group_id)
            return GroupProgress(after, total, before < total <= after)

        progress = await self.db.run(lambda conn: transaction(conn, apply))
        notify_results(self.db.notifier, [record])
        return progress

    async def save_group(self, group_id: str, member_ids: Sequence[str]) -> None:
        expires = now_ms() + int(self.expires_s * 1000) if self.expires_s else None
        await self.db.run(
            lambda conn: conn.execute(SQL["save-group"], (group_id, json.dumps(list(member_ids)), expires))
        )

    async def restore_group(self, group_id: str) -> list[str] | None:
        row = await self.db.run(lambda conn: conn.execute(SQL["restore-group"], (group_id,)).fetchone())
        return None if row is None else list(json.loads(row[0]))


def _member_count(conn: sqlite3.Connection, group_id: str) -> int:
    return int(conn.execute(SQL["count-group-members"], (group_id,)).fetchone()[0])
