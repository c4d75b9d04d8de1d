"""One SQLite connection on a thread of its own, shared by the SQLite broker and store.

sqlite3 blocks, so each connection lives on a dedicated thread and whole transactions
(several statements) run there in one hop; a per-statement async wrapper would pay a
thread hop per statement. WAL lets many processes on one host read while one writes.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import TypeVar
from urllib.parse import urlparse

from ._notify import Notifier
from .exceptions import BrokerUnavailable, ConfigurationError
from .message import READY_STATES, ResultRecord, encode_record

T = TypeVar("T")

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
        self._last_purge_ms = 0

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
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute("PRAGMA busy_timeout=30000")
            schema = resources.files("celeriac.brokers").joinpath("sqlite_sql/schema.sql").read_text()
            conn.executescript(schema)
            _add_missing_columns(conn)
        except (sqlite3.Error, OSError) as exc:
            raise BrokerUnavailable(
                f"cannot open the SQLite database at {self.path}: {exc}; check that the "
                "directory exists and is writable, and that the file is not another "
                "program's database"
            ) from exc
        return conn

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the connection's thread."""
        if self._conn is None:
            await self.open()
        conn, executor = self._conn, self._executor
        assert conn is not None and executor is not None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, fn, conn)

    def purge_expired(self, conn: sqlite3.Connection) -> None:
        """Delete expired results and groups, at most once a minute (inside a write transaction)."""
        now = now_ms()
        if now - self._last_purge_ms > 60_000:
            self._last_purge_ms = now
            conn.execute("DELETE FROM celeriac_results WHERE expires_at_ms < ?", (now,))
            conn.execute("DELETE FROM celeriac_groups WHERE expires_at_ms < ?", (now,))

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        executor, self._executor = self._executor, None
        if conn is not None and executor is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(executor, conn.close)
        if executor is not None:
            executor.shutdown(wait=False)


# Columns added after a table first shipped: (table, column, definition).
_LATER_COLUMNS = [
    ("celeriac_messages", "expired_count", "INTEGER NOT NULL DEFAULT 0"),
    ("celeriac_dead_letters", "delivery_count", "INTEGER NOT NULL DEFAULT 0"),
    ("celeriac_dead_letters", "priority", "INTEGER NOT NULL DEFAULT 0"),
]


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    """Bring a file made by an earlier development build up to the current schema."""
    for table, column, definition in _LATER_COLUMNS:
        columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in columns:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")


def transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``fn`` in a write transaction taken up front, so it never upgrades and deadlocks."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


def now_ms() -> int:
    return int(time.time() * 1000)


def write_records(
    conn: sqlite3.Connection, records: Sequence[ResultRecord], expires_s: float | None
) -> list[str]:
    """Upsert records inside the caller's transaction; refuse ones with a stale token."""
    expires_at = now_ms() + int(expires_s * 1000) if expires_s else None
    refused = []
    for record in records:
        cursor = conn.execute(
            "INSERT INTO celeriac_results (task_id, is_ready, fencing_token, record, expires_at_ms)"
            " VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (task_id) DO UPDATE SET is_ready = excluded.is_ready,"
            " fencing_token = excluded.fencing_token, record = excluded.record,"
            " expires_at_ms = excluded.expires_at_ms"
            # A stale token loses; with the same token a finished state is never replaced
            # by an unfinished one (a late STARTED must not hide a SUCCESS).
            " WHERE excluded.fencing_token > celeriac_results.fencing_token"
            " OR (excluded.fencing_token = celeriac_results.fencing_token"
            "     AND (excluded.is_ready OR NOT celeriac_results.is_ready))",
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
