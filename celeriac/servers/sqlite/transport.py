"""``sqlite:///path.db``: the embedded default broker.

Durable and zero set-up; many processes on one host share the file (WAL). Every state
change is one ``BEGIN IMMEDIATE`` transaction, so reserving, reclaiming and acking are
atomic across processes. SQLite cannot notify other processes, so an idle worker polls
``PRAGMA data_version`` (a counter read without a lock) with a bounded back-off, and is
woken at once by publishers in its own process.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence

from ..._notify import wait_for_notice
from ...exceptions import DuplicateTaskError
from ...message import DeadLetter, Delivery, ResultRecord, now_ms
from ...stats import StatsRow, rows_from_items
from ..contracts import (
    SKIPPED_NOT_FOUND,
    SKIPPED_PENDING,
    BrokerOptions,
    OutgoingMessage,
    QueueStats,
    RequeueOutcome,
    lost_record,
    max_deliveries_reason,
)
from ..queries import with_marks
from .database import (
    SQLiteDatabase,
    notify_results,
    path_from_url,
    transaction,
    write_records,
)

# The statements: named blocks of sql/messages.sql, control.sql and admin.sql (statements.py).
from .statements import QUEUED, SCHEDULED, SQL

MESSAGES = "messages"
MAX_IDLE_POLL_S = 0.1
MIN_IDLE_POLL_S = 0.002


class SQLiteBroker:
    def __init__(self, url: str, options: BrokerOptions | None = None, db: SQLiteDatabase | None = None) -> None:
        self.url = url
        self.options = options or BrokerOptions()
        self.path = path_from_url(url)
        self.db = db or SQLiteDatabase(self.path)
        # The broker's clock, for leases, etas, unique ids and rate buckets (skew_clock
        # moves it on in tests); results expire by the database's own time.
        self.clock_ms: Callable[[], int] = now_ms
        self._skew_ms = 0

    async def connect(self) -> None:
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()

    async def skew_clock(self, ms: int) -> None:
        self._skew_ms += ms
        skew = self._skew_ms
        self.clock_ms = lambda: now_ms() + skew

    # --- publishing -------------------------------------------------------------------

    async def publish(self, messages: Sequence[OutgoingMessage], *, on_duplicate: str = "error") -> None:
        messages = list(messages)  # built here, in the caller's context, not on the database's thread

        def insert(conn: sqlite3.Connection) -> None:
            now = self.clock_ms()
            rows = []
            for msg in messages:
                due = msg.eta_ms if msg.eta_ms is not None else now
                state = SCHEDULED if due > now else QUEUED
                rows.append((msg.task_id, msg.queue, msg.body, msg.priority, due, state))
            # Expired unique ids are left for housekeeping to delete: until then they are
            # skipped here, and overwritten by a new unique publish of the same id.
            if on_duplicate != "ignore":
                _refuse_duplicates(conn, [m.task_id for m in messages], now)
                remembered: set[str] = set()
            else:  # a remembered id is skipped, whether or not this message is unique too
                remembered = {r[0] for r in conn.execute(
                    with_marks(SQL["remembered-unique-ids"], len(messages)), [*(m.task_id for m in messages), now],
                )}
                rows = [row for row in rows if row[0] not in remembered]
            conn.executemany(
                SQL["remember-unique-id"],
                [(m.task_id, now + int(m.unique_for_s * 1000), now) for m in messages
                 if m.unique_for_s and m.task_id not in remembered],
            )
            conn.executemany(SQL["publish"], rows)

        await self.db.run(lambda conn: transaction(conn, insert))
        self.db.notifier.notify(MESSAGES)

    # --- reserving ------------------------------------------------------------------

    async def reserve(
        self, queues: Sequence[str], max_count: int, *, lease_ms: int, worker_id: str, timeout_s: float
    ) -> list[Delivery]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        notifier = self.db.notifier
        poll_s = MIN_IDLE_POLL_S
        while True:
            fut = notifier.subscribe(MESSAGES)
            try:
                taken, next_event_ms, version = await self.db.run(
                    lambda conn: self._take(conn, list(queues), max_count, lease_ms, worker_id)
                )
                if taken or loop.time() >= deadline:
                    return taken
                # Nothing to take: sleep until a local publish, a change by another
                # process (seen through data_version), a due eta or lease, or the deadline.
                while True:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    wait_s = min(poll_s, remaining)
                    if next_event_ms is not None:
                        wait_s = min(wait_s, max(next_event_ms - self.clock_ms(), 1) / 1000)
                    if await wait_for_notice(fut, wait_s):
                        poll_s = MIN_IDLE_POLL_S
                        break
                    poll_s = min(poll_s * 2, MAX_IDLE_POLL_S)
                    if next_event_ms is not None and self.clock_ms() >= next_event_ms:
                        break
                    if await self.db.run(_data_version) != version:
                        break
            finally:
                notifier.unsubscribe(MESSAGES, fut)

    def _take(
        self, conn: sqlite3.Connection, queues: list[str], max_count: int, lease_ms: int, worker_id: str
    ) -> tuple[list[Delivery], int | None, int]:
        now = self.clock_ms()
        # A read-only look first: an idle worker must not take the write lock every poll.
        has_work = conn.execute(with_marks(SQL["has-work"], len(queues)), (*queues, now, now)).fetchone()[0]
        taken: list[Delivery] = []
        if has_work:
            taken = transaction(conn, lambda c: self._take_locked(c, queues, max_count, lease_ms, worker_id))
        next_event_ms = conn.execute(SQL["next-event"]).fetchone()[0]
        return taken, next_event_ms, _data_version(conn)

    def _take_locked(
        self, conn: sqlite3.Connection, queues: list[str], max_count: int, lease_ms: int, worker_id: str,
    ) -> list[Delivery]:
        now = self.clock_ms()
        self._reclaim_expired(conn, now)
        conn.execute(SQL["queue-due-messages"], (now,))
        rows = conn.execute(
            with_marks(SQL["reserve"], len(queues)), (now + lease_ms, worker_id, *queues, max_count),
        ).fetchall()
        rows.sort(key=lambda r: (-r[4], r[5]))  # RETURNING has no defined order
        return [Delivery(r[0], r[1], r[2], r[3], now + lease_ms) for r in rows]

    def _reclaim_expired(self, conn: sqlite3.Connection, now: int) -> None:
        limit = self.options.max_deliveries
        expired = conn.execute(SQL["count-lease-expiries"], (now,)).fetchall()  # per queue, for queue_stats
        if not expired:
            return
        conn.execute(SQL["count-run-out-leases"], (now,))
        doomed = conn.execute(SQL["take-past-max-deliveries"], (now, limit)).fetchall()
        buried: dict[str, int] = {}
        for r in doomed:
            buried[r[1]] = buried.get(r[1], 0) + 1
        conn.executemany(SQL["add-lease-expiries"], [(queue, n, n - buried.get(queue, 0)) for queue, n in expired])
        conn.executemany(
            SQL["insert-dead-letter"],
            [(r[0], r[1], r[2], max_deliveries_reason(r[3], limit), now, r[4], r[5]) for r in doomed],
        )
        if doomed:
            write_records(conn, [lost_record(r[0], max_deliveries_reason(r[3], limit), r[4]) for r in doomed],
                          self.options.result_expires_s)
        conn.execute(SQL["reclaim-expired"], (now, now))

    # --- finishing ------------------------------------------------------------------

    async def _fenced(self, deliveries: Sequence[Delivery], sql: str, extra: tuple[object, ...] = ()) -> list[str]:
        """Run ``sql`` (which ends in the fencing WHERE) once per delivery; return refused ids."""

        def apply(conn: sqlite3.Connection) -> list[str]:
            refused = []
            for d in deliveries:
                if conn.execute(sql, (*extra, d.task_id, d.fencing_token)).rowcount == 0:
                    refused.append(d.task_id)
            return refused

        return await self.db.run(lambda conn: transaction(conn, apply))

    async def renew(self, deliveries: Sequence[Delivery], lease_ms: int) -> list[str]:
        expires = self.clock_ms() + lease_ms
        lost = await self._fenced(deliveries, SQL["renew"], (expires,))
        for d in deliveries:
            d.lease_expires_at_ms = expires
        return lost

    async def ack(self, deliveries: Sequence[Delivery], results: Sequence[ResultRecord] = ()) -> list[str]:
        def apply(conn: sqlite3.Connection) -> list[str]:
            refused = []
            for d in deliveries:
                cursor = conn.execute(SQL["ack"], (d.task_id, d.fencing_token))
                if cursor.rowcount == 0:
                    refused.append(d.task_id)
            if results:
                kept = [r for r in results if r.task_id not in refused]
                write_records(conn, kept, self.options.result_expires_s)
            return refused

        refused = await self.db.run(lambda conn: transaction(conn, apply))
        notify_results(self.db.notifier, results)
        return refused

    async def release(self, deliveries: Sequence[Delivery]) -> list[str]:
        refused = await self._fenced(deliveries, SQL["release"])  # to the head of its priority
        self.db.notifier.notify(MESSAGES)
        return refused

    async def retry(self, delivery: Delivery, body: bytes, eta_ms: int | None) -> bool:
        now = self.clock_ms()
        due = eta_ms if eta_ms is not None else now
        refused = await self._fenced([delivery], SQL["retry"], (SCHEDULED if due > now else QUEUED, body, due))
        self.db.notifier.notify(MESSAGES)
        return not refused

    async def dead_letter(self, delivery: Delivery, reason: str) -> bool:
        def apply(conn: sqlite3.Connection) -> bool:
            row = conn.execute(SQL["dead-letter"], (delivery.task_id, delivery.fencing_token)).fetchone()
            if row is None:
                return False
            conn.execute(
                SQL["insert-dead-letter"],
                (delivery.task_id, row[0], row[1], reason, self.clock_ms(), delivery.fencing_token, row[2]),
            )
            return True

        return await self.db.run(lambda conn: transaction(conn, apply))

    # --- revoking and the dead-letter queue ------------------------------------------

    async def revoke(self, task_ids: Sequence[str], *, terminate: bool = False) -> None:
        until = now_ms() + int(self.options.revoked_ttl_s * 1000)

        def apply(conn: sqlite3.Connection) -> None:
            conn.execute(SQL["forget-expired-revoked-ids"], (now_ms(),))
            conn.executemany(SQL["revoke"], [(t, until, terminate) for t in task_ids])

        await self.db.run(lambda conn: transaction(conn, apply))

    async def revoked_among(self, task_ids: Sequence[str]) -> dict[str, bool]:
        if not task_ids:
            return {}
        ids = list(task_ids)

        def query(conn: sqlite3.Connection) -> dict[str, bool]:
            rows = conn.execute(with_marks(SQL["revoked-among"], len(ids)), (*ids, now_ms())).fetchall()
            return {r[0]: bool(r[1]) for r in rows}

        return await self.db.run(query)

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        rows = await self.db.run(lambda conn: conn.execute(SQL["list-dead-letters"], (limit,)).fetchall())
        return [DeadLetter(*r) for r in rows]

    async def requeue_dead_letters(self, task_ids: Sequence[str] | None = None) -> RequeueOutcome:
        def apply(conn: sqlite3.Connection) -> RequeueOutcome:
            newest: dict[str, int] = {}  # task id -> the id of its newest dead letter
            if task_ids is None:
                wanted = []
                for task_id, entry in conn.execute(SQL["newest-dead-letter-of-every-id"]):
                    wanted.append(task_id)
                    newest[task_id] = entry
            else:
                wanted = list(dict.fromkeys(task_ids))
                for start in range(0, len(wanted), 500):
                    chunk = wanted[start : start + 500]
                    newest.update(conn.execute(with_marks(SQL["newest-dead-letter-of-ids"], len(chunk)),
                                               chunk).fetchall())
            outcome = RequeueOutcome()
            now = self.clock_ms()
            for task_id in wanted:
                entry = newest.get(task_id)
                if entry is None:
                    outcome.skipped[task_id] = SKIPPED_NOT_FOUND
                elif conn.execute(SQL["message-exists"], (task_id,)).fetchone():
                    outcome.skipped[task_id] = SKIPPED_PENDING
                else:
                    queue, body, count, priority = conn.execute(SQL["take-dead-letter"], (entry,)).fetchone()
                    conn.execute(SQL["requeue"], (task_id, queue, body, priority, now, count))
                    outcome.requeued.append(task_id)
            return outcome

        outcome = await self.db.run(lambda conn: transaction(conn, apply))
        if outcome.requeued:
            self.db.notifier.notify(MESSAGES)
        return outcome

    async def purge_dead_letters(self) -> int:
        return await self.db.run(lambda conn: conn.execute(SQL["purge-dead-letters"]).rowcount)

    async def purge(self, queue: str) -> int:
        return await self.db.run(lambda conn: conn.execute(SQL["purge-queue"], (queue,)).rowcount)

    async def take_rate_token(self, key: str, rate_per_s: float, capacity: float) -> float:
        def apply(conn: sqlite3.Connection) -> float:
            now = self.clock_ms()
            row = conn.execute(SQL["rate-bucket"], (key,)).fetchone()
            tokens = capacity if row is None else min(capacity, row[0] + (now - row[1]) / 1000 * rate_per_s)
            wait_s = 0.0
            if tokens >= 1:
                tokens -= 1
            else:
                wait_s = (1 - tokens) / rate_per_s
            conn.execute(SQL["save-rate-bucket"], (key, tokens, now))
            return wait_s

        return await self.db.run(lambda conn: transaction(conn, apply))

    async def emit_events(self, events: Sequence[bytes], stats: Sequence[StatsRow] = ()) -> None:
        if not events and not stats:
            return
        cap = self.options.events_max

        def apply(conn: sqlite3.Connection) -> None:
            if events:
                conn.executemany(SQL["append-event"], [(e,) for e in events])
                last = conn.execute(SQL["last-event-id"]).fetchone()[0]
                conn.execute(SQL["drop-events-up-to"], (last - cap,))
            if stats:
                _add_stats(conn, stats)

        await self.db.run(lambda conn: transaction(conn, apply))

    async def record_stats(self, rows: Sequence[StatsRow]) -> None:
        if rows:
            await self.db.run(lambda conn: transaction(conn, lambda c: _add_stats(c, rows)))

    async def read_stats(self, since_minute: int, until_minute: int) -> list[StatsRow]:
        items = await self.db.run(
            lambda conn: conn.execute(SQL["read-stats"], (since_minute, until_minute)).fetchall())
        return rows_from_items(items)

    async def emit_control(self, records: Sequence[bytes]) -> None:
        if not records:
            return
        cap = self.options.control_max

        def apply(conn: sqlite3.Connection) -> None:
            conn.executemany(SQL["append-control"], [(r,) for r in records])
            last = conn.execute(SQL["last-control-id"]).fetchone()[0]
            conn.execute(SQL["drop-control-up-to"], (last - cap,))

        await self.db.run(lambda conn: transaction(conn, apply))

    async def read_control(self, after: str | None = None, limit: int = 100) -> list[tuple[str, bytes]]:
        def query(conn: sqlite3.Connection) -> list[tuple[str, bytes]]:
            if after is None:
                rows = conn.execute(SQL["newest-control"], (limit,)).fetchall()
            else:
                rows = conn.execute(SQL["control-after"], (int(after), limit)).fetchall()
            return [(str(r[0]), r[1]) for r in rows]

        return await self.db.run(query)

    async def read_events(self, after: str | None = None, limit: int = 1000) -> list[tuple[str, bytes]]:
        def query(conn: sqlite3.Connection) -> list[tuple[str, bytes]]:
            if after is None:
                rows = conn.execute(SQL["newest-events"], (limit,)).fetchall()
            else:
                rows = conn.execute(SQL["events-after"], (int(after), limit)).fetchall()
            return [(str(r[0]), r[1]) for r in rows]

        return await self.db.run(query)

    async def queue_depths(self) -> dict[str, int]:
        rows = await self.db.run(lambda conn: conn.execute(SQL["queue-depths"]).fetchall())
        return {r[0]: r[1] for r in rows}

    async def queue_stats(self) -> dict[str, QueueStats]:
        now = self.clock_ms()

        def query(conn: sqlite3.Connection) -> dict[str, QueueStats]:
            found: dict[str, QueueStats] = {}
            conn.execute(SQL["begin-read"])  # one snapshot for the three reads
            try:
                for queue, queued, scheduled, leased, oldest in conn.execute(SQL["message-stats"], (now, now, now)):
                    found[queue] = QueueStats(queue, queued or 0, scheduled or 0, leased or 0, oldest)
                for queue, count in conn.execute(SQL["dead-letters-per-queue"]):
                    found.setdefault(queue, QueueStats(queue)).dead_letters = count
                for queue, expired, reclaimed in conn.execute(SQL["lease-counters"]):
                    stats = found.setdefault(queue, QueueStats(queue))
                    stats.lease_expirations, stats.lease_reclaims = expired, reclaimed
            finally:
                conn.execute(SQL["commit"])
            return found

        return await self.db.run(query)

    async def dead_letter_count(self) -> int:
        return int(await self.db.run(lambda conn: conn.execute(SQL["count-dead-letters"]).fetchone()[0]))


def _add_stats(conn: sqlite3.Connection, rows: Sequence[StatsRow]) -> None:
    conn.executemany(SQL["add-stat"], [(row.minute, row.name, row.queue, metric, value)
                                       for row in rows for metric, value in row.items()])


def _data_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute(SQL["data-version"]).fetchone()[0])


def _refuse_duplicates(conn: sqlite3.Connection, task_ids: list[str], now: int) -> None:
    """Raise before anything of the batch is written if an id is pending, remembered or repeated."""
    taken: list[str] = []
    if len(set(task_ids)) != len(task_ids):
        seen: set[str] = set()
        taken = [t for t in task_ids if t in seen or seen.add(t)]  # type: ignore[func-returns-value]
    for start in range(0, len(task_ids), 500):
        chunk = task_ids[start : start + 500]
        taken += [r[0] for r in conn.execute(
            with_marks(SQL["pending-or-remembered-ids"], len(chunk)), [*chunk, *chunk, now],
        )]
    if taken:
        raise DuplicateTaskError.pending(taken[0])
