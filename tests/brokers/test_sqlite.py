"""SQLite only: housekeeping (expired rows, the WAL) and files made by earlier builds."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from celeriac.exceptions import DuplicateTaskError
from celeriac.message import SUCCESS, ResultRecord, now_ms
from celeriac.servers import BrokerOptions, OutgoingMessage
from celeriac.servers.contracts import RequeueOutcome
from celeriac.servers.sqlite import database as _sqlite_db
from celeriac.servers.sqlite.results import SQLiteResultStore
from celeriac.servers.sqlite.statements import JOURNAL_SIZE_LIMIT
from celeriac.servers.sqlite.transport import SQLiteBroker

LEASE_MS = 60_000
EXPIRES_S = 60


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "celeriac.db")


@pytest.fixture
async def broker(path: str) -> AsyncIterator[SQLiteBroker]:
    b = SQLiteBroker(f"sqlite:///{path}", BrokerOptions(result_expires_s=EXPIRES_S, revoked_ttl_s=EXPIRES_S))
    await b.connect()
    yield b
    await b.close()


@pytest.fixture
async def store(broker: SQLiteBroker) -> AsyncIterator[SQLiteResultStore]:
    s = SQLiteResultStore(broker.url, EXPIRES_S, broker.db)
    await s.connect()
    yield s
    await s.close()


def rec(task_id: str) -> ResultRecord:
    return ResultRecord(task_id=task_id, state=SUCCESS, result=1, fencing_token=1, date_done_ms=now_ms())


def counts(path: str) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        return {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in (
            "celeriac_results", "celeriac_group_members", "celeriac_groups", "celeriac_unique_ids",
            "celeriac_revoked",
        )}
    finally:
        conn.close()


async def leave_expiring_rows(broker: SQLiteBroker, store: SQLiteResultStore) -> None:
    """What 5 finished chords of 4 members, a unique follow-up and a revoke leave behind."""
    for g in range(5):
        for m in range(4):
            await store.record_group_member(f"g{g}", f"g{g}-m{m}", 4, rec(f"g{g}-m{m}"))
        await store.save_group(f"g{g}", [f"g{g}-m{m}" for m in range(4)])
    follow_up = OutgoingMessage("follow-up", "q", b"{}", unique_for_s=EXPIRES_S)
    await broker.publish([follow_up])
    [d] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    assert await broker.ack([d], [rec("follow-up")]) == []
    await broker.revoke(["revoked"])


async def test_housekeeping_deletes_expired_results_group_members_unique_and_revoked_ids(
    broker: SQLiteBroker, store: SQLiteResultStore, path: str
) -> None:
    await leave_expiring_rows(broker, store)
    before = {"celeriac_results": 21, "celeriac_group_members": 20, "celeriac_groups": 5,
              "celeriac_unique_ids": 1, "celeriac_revoked": 1}
    assert counts(path) == before
    db = broker.db
    db.clock_ms = lambda: now_ms() + (EXPIRES_S - 10) * 1000  # not expired yet
    assert await db.housekeep() == 0
    assert counts(path) == before
    db.clock_ms = lambda: now_ms() + (EXPIRES_S + 10) * 1000
    assert await db.housekeep() == 48
    assert counts(path) == dict.fromkeys(before, 0)


async def test_housekeeping_runs_by_itself_once_due(broker: SQLiteBroker, store: SQLiteResultStore, path: str) -> None:
    await leave_expiring_rows(broker, store)
    # An hour later by the database's clock: the rows have expired and a pass is due, so
    # the next call of any kind runs it first.
    broker.db.clock_ms = lambda: now_ms() + 3600_000
    assert await store.fetch("nothing") is None
    assert counts(path) == dict.fromkeys(counts(path), 0)
    # The next pass is an interval away: new expired rows wait for it.
    await leave_expiring_rows(broker, store)
    assert await store.fetch("nothing") is None
    assert counts(path)["celeriac_group_members"] == 20


async def test_housekeeping_deletes_in_bounded_batches(
    broker: SQLiteBroker, store: SQLiteResultStore, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_sqlite_db, "PURGE_BATCH", 3)
    monkeypatch.setattr(_sqlite_db, "MAX_PURGE_BATCHES", 4)
    await store.store([rec(f"r{i}") for i in range(20)])
    broker.db.clock_ms = lambda: now_ms() + 3600_000
    assert await broker.db.housekeep() == 12  # 4 batches of 3; the rest waits for the next pass
    assert counts(path)["celeriac_results"] == 8
    assert await broker.db.housekeep() == 8
    assert counts(path)["celeriac_results"] == 0


async def test_an_expired_unique_id_not_yet_deleted_does_not_refuse_a_publish(broker: SQLiteBroker) -> None:
    await broker.db.run(lambda conn: conn.execute("INSERT INTO celeriac_unique_ids VALUES ('u', ?)", (now_ms() - 1,)))
    await broker.publish([OutgoingMessage("u", "q", b"{}")])
    [d] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    assert await broker.ack([d]) == []
    # A unique publish replaces the expired row, so the id is remembered again.
    await broker.publish([OutgoingMessage("u", "q", b"{}", unique_for_s=EXPIRES_S)])
    [d] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    assert await broker.ack([d]) == []
    with pytest.raises(DuplicateTaskError):
        await broker.publish([OutgoingMessage("u", "q", b"{}")])


async def test_housekeeping_shrinks_the_wal_after_a_burst(broker: SQLiteBroker, path: str) -> None:
    # A reader holding a snapshot stops every checkpoint from resetting the WAL, so the
    # burst grows it (as busy workers polling all the time do).
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM celeriac_messages").fetchone()
    body = os.urandom(8192)
    for start in range(0, 2000, 100):
        await broker.publish([OutgoingMessage(f"m{i}", "q", body) for i in range(start, start + 100)])
    wal = path + "-wal"
    assert os.path.getsize(wal) > 16 * 1024 * 1024
    reader.execute("COMMIT")
    reader.close()
    await broker.db.housekeep()
    assert os.path.getsize(wal) < 1024 * 1024
    assert (await broker.queue_depths()) == {"q": 2000}


OLD_SCHEMA = """
CREATE TABLE celeriac_dead_letters (
    task_id TEXT PRIMARY KEY, queue TEXT NOT NULL, body BLOB NOT NULL, reason TEXT NOT NULL,
    failed_at_ms INTEGER NOT NULL
);
CREATE TABLE celeriac_results (
    task_id TEXT PRIMARY KEY, is_ready INTEGER NOT NULL, fencing_token INTEGER NOT NULL, record BLOB NOT NULL,
    expires_at_ms INTEGER
);
CREATE TABLE celeriac_group_members (
    group_id TEXT NOT NULL, member_id TEXT NOT NULL, PRIMARY KEY (group_id, member_id)
) WITHOUT ROWID;
"""


async def test_a_file_from_an_earlier_build_is_brought_up_to_date(path: str) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(OLD_SCHEMA)
    expires = now_ms() + 3600_000
    conn.execute("INSERT INTO celeriac_dead_letters VALUES ('old', 'q', x'7b7d', 'it failed', ?)", (now_ms(),))
    conn.execute("INSERT INTO celeriac_results VALUES ('kept', 1, 1, x'7b7d', ?)", (expires,))
    conn.executemany("INSERT INTO celeriac_group_members VALUES (?, ?)", [("g", "kept"), ("g", "expired")])
    conn.commit()
    conn.close()

    broker = SQLiteBroker(f"sqlite:///{path}")
    await broker.connect()
    try:
        [old] = await broker.dead_letters()
        assert (old.task_id, old.reason, old.delivery_count) == ("old", "it failed", 0)
        await broker.publish([OutgoingMessage("old", "q", b"new")])
        [d] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
        assert await broker.dead_letter(d, "failed again")
        assert [d.reason for d in await broker.dead_letters()] == ["it failed", "failed again"]
        assert await broker.requeue_dead_letters(["old"]) == RequeueOutcome(["old"], {})
        members = await broker.db.run(
            lambda c: c.execute("SELECT member_id, expires_at_ms FROM celeriac_group_members").fetchall()
        )
        assert members == [("kept", expires)]  # its result's expiry; the member whose result is gone went
    finally:
        await broker.close()
    # Opening it again changes nothing.
    again = SQLiteBroker(f"sqlite:///{path}")
    await again.connect()
    try:
        assert [d.reason for d in await again.dead_letters()] == ["it failed"]
    finally:
        await again.close()


async def test_the_wal_is_capped_whenever_a_checkpoint_completes(broker: SQLiteBroker) -> None:
    limit = await broker.db.run(lambda c: c.execute("PRAGMA journal_size_limit").fetchone()[0])
    assert limit == JOURNAL_SIZE_LIMIT


