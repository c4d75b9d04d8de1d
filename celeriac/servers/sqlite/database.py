"""One SQLite connection on a thread of its own, shared by the SQLite broker and store.

sqlite3 blocks, so each connection lives on a dedicated thread and whole transactions
(several statements) run there in one hop; a per-statement async wrapper would pay a
thread hop per statement. WAL lets many processes on one host read while one writes.

Housekeeping: every process that uses the file runs a pass about once a minute, just
before one of its calls (so nothing runs in the background and a cancelled caller
cancels it cleanly): expired results, group members, saved groups, unique ids and
revoked ids are deleted in short batches, each its own transaction, so the write lock is
never held for long; then the WAL is checkpointed and truncated, so it shrinks back
after a burst (``journal_size_limit`` caps it too whenever a checkpoint completes).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from importlib import resources
from typing import TypeVar
from urllib.parse import urlparse

from ..._notify import Notifier
from ...exceptions import BrokerUnavailable, ConfigurationError
from ...message import READY_STATES, ResultRecord, encode_record, now_ms
from ..queries import fill
from .statements import OLD_DEAD_LETTERS, SQL

T = TypeVar("T")

logger = logging.getLogger("celeriac.sqlite")

HOUSEKEEPING_EVERY_MS = 60_000
PURGE_BATCH = 500  # rows per table per transaction: the write lock is held a few ms at most
MAX_PURGE_BATCHES = 40  # per pass; whatever is left waits for the next pass

# The batched deletes of what expires (sql/housekeeping.sql), one per table.
_EXPIRING = ["purge-expired-results", "purge-expired-group-members", "purge-expired-groups",
             "purge-expired-unique-ids", "purge-expired-revoked-ids", "purge-old-stats"]

_notifiers: dict[str, Notifier] = {}
_notifiers_lock = threading.Lock()


def path_from_url(url: str) -> str:
    """``sqlite:///rel.db`` is relative to the working directory, ``sqlite:////abs.db`` absolute."""
    parsed = urlparse(url)
    if parsed.scheme != "sqlite":
        raise ConfigurationError(f"not a SQLite URL: {url!r}")
    if parsed.netloc:
        raise ConfigurationError(
            f"SQLite URL {url!r} has a host part; write sqlite:///relative/path.db or "
            "sqlite:////absolute/path.db"
        )
    path = parsed.path[1:] if parsed.path.startswith("/") else parsed.path
    if not path:
        path = "celeriac.db"
    return os.path.abspath(path)


def notifier_for(path: str) -> Notifier:
    """Wake-ups for waiters in this process; other processes find changes by polling."""
    with _notifiers_lock:
        return _notifiers.setdefault(path, Notifier())


class SQLiteDatabase:
    def __init__(self, path: str, *, synchronous: str = "NORMAL") -> None:
        self.path = path
        self.synchronous = synchronous
        self.notifier = notifier_for(path)
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._open_lock = asyncio.Lock()
        self.clock_ms: Callable[[], int] = now_ms  # housekeeping's clock; tests move it on
        self.housekeeping_every_ms = HOUSEKEEPING_EVERY_MS
        # The first pass comes within an interval of opening, at a random point so that
        # processes started together do not all run theirs at the same moment.
        self._next_housekeeping_ms = now_ms() + int(HOUSEKEEPING_EVERY_MS * random.uniform(0.1, 1.0))
        self._housekeeping = False

    async def open(self) -> None:
        async with self._open_lock:
            if self._conn is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="celeriac-sqlite")
                loop = asyncio.get_running_loop()
                self._conn = await loop.run_in_executor(self._executor, self._connect)

    def _connect(self) -> sqlite3.Connection:
        directory = os.path.dirname(self.path)
        try:
            if directory:
                os.makedirs(directory, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
            conn.execute(SQL["journal-mode"])
            conn.execute(SQL["journal-size-limit"])
            conn.execute(fill(SQL["synchronous"], synchronous=self.synchronous))
            conn.execute(SQL["busy-timeout"])
            _upgrade_tables(conn)
            schema = resources.files("celeriac.servers.sqlite").joinpath("sql/schema.sql").read_text()
            conn.executescript(schema)
            _move_old_dead_letters(conn)
        except (sqlite3.Error, OSError) as exc:
            raise BrokerUnavailable(
                f"cannot open the SQLite database at {self.path}: {exc}; check that the "
                "directory exists and is writable, and that the file is not another "
                "program's database"
            ) from exc
        return conn

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the connection's thread (after a housekeeping pass when one is due)."""
        if self._conn is None:
            await self.open()
        if not self._housekeeping and self.clock_ms() >= self._next_housekeeping_ms:
            await self._housekeep_when_due()
        return await self._call(fn)

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn, executor = self._conn, self._executor
        assert conn is not None and executor is not None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, fn, conn)

    async def _housekeep_when_due(self) -> None:
        self._next_housekeeping_ms = self.clock_ms() + self.housekeeping_every_ms
        try:
            await self.housekeep()
        except sqlite3.Error as exc:  # the caller's own work must not fail for it; the next pass retries
            logger.warning("SQLite housekeeping on %s failed (the next pass retries): %s", self.path, exc)

    async def housekeep(self) -> int:
        """One housekeeping pass: delete expired rows in short batches, then truncate the WAL.

        Returns how many rows were deleted. Each batch is its own transaction, so other
        calls (of this process and of others) run in between.
        """
        if self._conn is None:
            await self.open()
        self._housekeeping = True
        try:
            deleted = 0
            for _ in range(MAX_PURGE_BATCHES):
                count, more = await self._call(partial(_purge_batch_in_transaction, now=self.clock_ms()))
                deleted += count
                if not more:
                    break
            await self._call(_truncate_wal)
            return deleted
        finally:
            self._housekeeping = False

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        executor, self._executor = self._executor, None
        if conn is not None and executor is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(executor, conn.close)
        if executor is not None:
            executor.shutdown(wait=False)


def _purge_batch_in_transaction(conn: sqlite3.Connection, now: int) -> tuple[int, bool]:
    return transaction(conn, lambda c: _purge_batch(c, now))


def _purge_batch(conn: sqlite3.Connection, now: int) -> tuple[int, bool]:
    """Delete up to PURGE_BATCH expired rows of each table; return (deleted, whether more are left)."""
    deleted, more = 0, False
    for name in _EXPIRING:
        count = conn.execute(SQL[name], (now, PURGE_BATCH)).rowcount
        deleted += count
        more = more or count >= PURGE_BATCH
    return deleted, more


def _truncate_wal(conn: sqlite3.Connection) -> bool:
    """Checkpoint and truncate the WAL; give up at once (False) while other processes hold it."""
    conn.execute(SQL["checkpoint-busy-timeout"])
    try:
        busy = int(conn.execute(SQL["truncate-wal"]).fetchone()[0])
    except sqlite3.OperationalError:  # locked: the next pass tries again
        busy = 1
    finally:
        conn.execute(SQL["busy-timeout"])
    return busy == 0


# Columns added after a table first shipped: (table, column, the statement adding it in sql/upgrade.sql).
_LATER_COLUMNS = [
    ("celeriac_messages", "expired_count", "add-messages-expired-count"),
    ("celeriac_dead_letters", "delivery_count", "add-dead-letters-delivery-count"),
    ("celeriac_dead_letters", "priority", "add-dead-letters-priority"),
    ("celeriac_group_members", "expires_at_ms", "add-group-members-expires-at"),
]


def _columns(conn: sqlite3.Connection, table: str) -> dict[str, int]:
    """A table's columns, each with its place in the primary key (0: not in it); {} if no such table."""
    return dict(conn.execute(SQL["table-columns"], (table,)))


def _upgrade_tables(conn: sqlite3.Connection) -> None:
    """Bring tables made by an earlier development build up to the current schema.

    Runs before the schema, whose indexes may name the columns added here. Reads first, so
    an up-to-date file costs no write lock; the changes are made in one transaction that
    looks again, so processes opening the file at once do them once.
    """

    def needed(c: sqlite3.Connection) -> bool:
        for table, column, _ in _LATER_COLUMNS:
            columns = _columns(c, table)
            if columns and column not in columns:
                return True
        return _columns(c, "celeriac_dead_letters").get("task_id", 0) > 0

    def apply(c: sqlite3.Connection) -> None:
        for table, column, add_column in _LATER_COLUMNS:
            columns = _columns(c, table)
            if columns and column not in columns:
                c.execute(SQL[add_column])
                if table == "celeriac_group_members":
                    # Earlier builds kept members forever: each now goes with its result,
                    # and those whose result is gone already go now.
                    c.execute(SQL["expire-group-members-with-their-results"])
                    c.execute(SQL["drop-group-members-without-results"])
        if _columns(c, "celeriac_dead_letters").get("task_id", 0) > 0:
            # The schema creates the new table; _move_old_dead_letters moves the rows over.
            c.execute(SQL["rename-old-dead-letters"])

    if needed(conn):
        transaction(conn, lambda c: apply(c) if needed(c) else None)


def _move_old_dead_letters(conn: sqlite3.Connection) -> None:
    """Copy the dead letters of an earlier build's table into the current one, then drop it."""

    def apply(c: sqlite3.Connection) -> None:
        if not _columns(c, OLD_DEAD_LETTERS):
            return
        c.execute(SQL["move-old-dead-letters"])
        c.execute(SQL["drop-old-dead-letters"])

    if _columns(conn, OLD_DEAD_LETTERS):
        transaction(conn, apply)


def transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``fn`` in a write transaction taken up front, so it never upgrades and deadlocks."""
    conn.execute(SQL["begin-immediate"])
    try:
        result = fn(conn)
    except BaseException:
        conn.execute(SQL["rollback"])
        raise
    conn.execute(SQL["commit"])
    return result




def write_records(
    conn: sqlite3.Connection, records: Sequence[ResultRecord], expires_s: float | None
) -> list[str]:
    """Upsert records inside the caller's transaction; refuse ones with a stale token."""
    expires_at = now_ms() + int(expires_s * 1000) if expires_s else None
    refused = []
    for record in records:
        cursor = conn.execute(
            SQL["write-result"],  # fenced: a stale token, or a finished state replaced by an unfinished one, loses
            (record.task_id, record.state in READY_STATES, record.fencing_token,
             encode_record(record), expires_at),
        )
        if cursor.rowcount == 0:
            refused.append(record.task_id)
    return refused


def notify_results(notifier: Notifier, records: Sequence[ResultRecord]) -> None:
    for record in records:
        if record.state in READY_STATES:
            notifier.notify(f"result:{record.task_id}")
