"""``postgresql://``: the broker, on ``FOR UPDATE SKIP LOCKED`` and ``LISTEN/NOTIFY``.

Every operation is one statement (``sql/transport.sql``), so it is atomic and one round
trip; steps that belong together are chained in it as data-modifying CTEs. Reserving is
one statement too: the best due messages are locked with ``SKIP LOCKED`` (workers never
wait on each other's rows) and leased. Leases that ran out are taken back (or
dead-lettered) by a statement of their own that a reserve runs first when it is due
(``RECLAIM_EVERY_S``). Deadlines are set and compared in the database's clock. An idle ``reserve``
waits for a notification on its queues' channels (``listener.py``), at most until the
next scheduled message is due or lease runs out, and looks again now and then in case a
notification was lost. The connection, the pool and the retries are in
``connection.py``.

An idle reserve also offers its free slots to publishers: a single ``delay()`` then
inserts its message already leased to that worker and sends it on the worker's own
channel, so the worker starts it without a reserve (``handoff.py``; ``_handed`` here).

A reserve hands its messages out before its transaction has committed: the rows come
back in one round trip, and the commit (the disk wait) goes on in the background
while the tasks start (``PostgresConnection.lease``). Until it ends the rows stay locked,
so nobody else can take them; every fenced call on those deliveries (ack, renew,
release, retry, dead letter) first waits for it (``LeaseCommits``), and a delivery whose
lease did not commit (the connection dropped: the server rolled it back, so another
worker may hold that task with the same token) is treated as a lease lost, never
written with its token.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec
import psycopg

from ..._notify import wait_for_any
from ...exceptions import DuplicateTaskError
from ...message import READY_STATES, DeadLetter, Delivery, ResultRecord, encode_record
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
from ..shared import OnSharedConnection
from . import MessageTooLarge, copy_format, handoff, on_django
from .connection import LeasedRows, PostgresConnection, fenced, from_ms, queue_key, result_key, to_ms
from .results import expires_ms, result_params

logger = logging.getLogger("celeriac.postgres")

SAFETY_POLL_S = 5.0  # an idle reserve looks again this often even without a notice
# A reserve takes back run-out leases first (the reclaim statement) at least this often,
# or a quarter of the lease when that is shorter, and after a wait cut short by the
# earliest lease's end (or eta) that reserve_status gave. A killed worker's messages so
# go back within a lease and a quarter at most, while a wake-up on a new message pays
# only for the reserve itself.
RECLAIM_EVERY_S = 1.0
RECLAIM_BATCH = 1000  # reclaim's LIMIT: a pass that takes back this many is followed by another
BLIND_POLL_S = (0.02, 0.5)  # its back-off while the listener is down
_DUPLICATE = "celeriac: duplicate task id"  # refuse_duplicate's message (0001_initial.sql)
_TIMES = "@times@"
STATS_SHARDS = 8  # a client adds its aggregates to one of this many rows per number (0002_dashboard.sql)


def _committed(future: asyncio.Future[bool]) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None and future.result()


class LeaseCommits:
    """Deliveries handed out before their lease committed, and those whose lease never did."""

    VOID_MAX = 10_000  # lease failures remembered until a fenced call asks (a dropped connection's worth)

    def __init__(self) -> None:
        self._pending: dict[str, tuple[int, asyncio.Future[bool]]] = {}
        self._void: dict[str, int] = {}

    def track(self, deliveries: Sequence[Delivery], committed: asyncio.Future[bool]) -> None:
        ids = [(d.task_id, d.fencing_token) for d in deliveries]
        if committed.done():
            self._settled(committed, ids)
            return
        for task_id, token in ids:
            self._pending[task_id] = (token, committed)
        committed.add_done_callback(lambda future: self._settled(future, ids))

    def _settled(self, committed: asyncio.Future[bool], ids: list[tuple[str, int]]) -> None:
        ok = _committed(committed)
        for task_id, token in ids:
            entry = self._pending.get(task_id)
            if entry is not None and entry[1] is committed:
                del self._pending[task_id]
            if not ok:
                self._void[task_id] = token
        while len(self._void) > self.VOID_MAX:
            del self._void[next(iter(self._void))]

    async def settle(self, deliveries: Sequence[Delivery], *, forget: bool = True) -> set[str]:
        """Wait for the leases of ``deliveries`` to commit; the ids of those that did not.

        ``forget``: the caller ends those deliveries, so their failures need not be kept.
        """
        waiting = [(d, entry[1]) for d in deliveries
                   if (entry := self._pending.get(d.task_id)) is not None and entry[0] == d.fencing_token]
        if waiting:
            await asyncio.wait({future for _, future in waiting})
        void = {d.task_id for d, future in waiting if not _committed(future)}
        if self._void:
            void |= {d.task_id for d in deliveries if self._void.get(d.task_id) == d.fencing_token}
            if forget:
                for task_id in void:
                    self._void.pop(task_id, None)
        return void


# Batches of at least this many messages are published by COPY (_publish_by_copy): below
# it, the single publish statement's one round trip costs less than COPY's three.
COPY_MIN = 64


class _NotByCopy(Exception):
    """The batch cannot be written by COPY; the publish statement sends it."""


def lost_template() -> str:
    """message.py's JSON of a lost task's FAILURE with placeholders the reserve statement fills."""
    record = lost_record("@celeriac-task-id@", "@celeriac-reason@", 2222222222)
    record.date_done_ms = 1111111111111
    return encode_record(record).decode()


def reason_template(max_deliveries: int) -> str:
    """max_deliveries_reason with the count left as @times@ for the statement."""
    marker = 918273645
    return max_deliveries_reason(marker, max_deliveries).replace(str(marker), _TIMES, 1)


class PostgresBroker(OnSharedConnection[PostgresConnection]):
    def __init__(
        self, url: str, options: BrokerOptions | None = None, connection: PostgresConnection | None = None
    ) -> None:
        self.url = url
        self.options = options or BrokerOptions()
        self.connection = connection if connection is not None else PostgresConnection(url)
        self._leases = LeaseCommits()
        self._confirming: set[asyncio.Future[None]] = set()  # hand-off leases being extended (_handed)
        self._reclaim_at = 0.0  # the loop time the next reclaim is due (0: at the next reserve)
        self._reclaim_args = {
            "max_deliveries": self.options.max_deliveries,
            "reason_template": reason_template(self.options.max_deliveries),
            "record_template": lost_template(),
            "result_expires_ms": expires_ms(self.options.result_expires_s),
        }
        self._stats_shard = random.randrange(STATS_SHARDS)

    async def skew_clock(self, ms: int) -> None:
        """Move this client's view of the database's clock forward by ``ms`` (tests)."""
        await self.connection.leases_committed()  # the leases it moves past have committed
        self.connection.skew_ms += ms
        self._reclaim_at = 0.0  # leases may have run out by the new clock

    # --- publishing -------------------------------------------------------------------

    async def publish(self, messages: Sequence[OutgoingMessage], *, on_duplicate: str = "error") -> None:
        if not messages:
            return
        refuse = on_duplicate != "ignore"
        limit = self.connection.target.max_message_size
        alias = on_django.transaction_alias(self.connection.target)
        if alias is not None:
            # Inside the caller's Django transaction on this database: the same statement on
            # Django's connection, committed or rolled back with the caller's rows.
            batch, values = _statement_params(messages, limit, refuse)
            statement = self.connection.statements["publish"]  # Django's cursor binds on the client
            try:
                on_django.execute(alias, statement, self.connection.params({**values, "resent": False}))
            except Exception as exc:
                refused = _refusal(exc.__cause__)
                if refused is None:
                    raise
                raise refused from None
            on_django.on_commit(alias, lambda: self.connection.notify_queues(m.queue for m in batch))
            return
        attempts = 0

        async def work(conn: psycopg.AsyncConnection[Any]) -> None:
            nonlocal attempts
            # Sent again after a lost reply, the first attempt may have stored the batch:
            # an id already there with the same body is then this call's own message.
            attempts += 1
            if attempts == 1 and len(messages) >= COPY_MIN and await self._publish_by_copy(conn, messages, limit):
                return
            if attempts == 1 and len(messages) == 1 and not messages[0].unique_for_s:
                one = messages[0]  # most delay() calls: no batch arrays to build
                _check_size(one, limit)
                cursor = await conn.execute(self.connection.pool_statements["publish_one"], self.connection.params({
                    "task_id": one.task_id, "queue": one.queue, "body": one.body, "priority": _priority(one.priority),
                    "eta": _eta(one), "handoff": handoff.may_hand_off(one)}))
                row = await cursor.fetchone()
                if row is not None and row[0]:
                    return  # inserted; else publish says why not (or skips it)
            _, values = _statement_params(messages, limit, refuse)
            try:
                await conn.execute(self.connection.pool_statements["publish"],
                                   self.connection.params({**values, "resent": attempts > 1}))
            except psycopg.errors.RaiseException as exc:
                refused = _refusal(exc)
                if refused is None:
                    raise
                raise refused from None

        await self.connection.run("publish", work)
        self.connection.notify_queues(m.queue for m in messages)

    async def _publish_by_copy(self, conn: psycopg.AsyncConnection[Any], messages: Sequence[OutgoingMessage],
                               limit: int) -> bool:
        """Publish a large batch by COPY, in one transaction; False if it must go through publish.

        COPY writes rows several times faster than an INSERT of the same rows (no per-row
        executor, the heap filled a page at a time) and its rows are sent in binary. Each
        message is written as it is read, so the server stores the first ones while a
        group's later members are still being built (``publish.Outgoing``). COPY has no
        ON CONFLICT: a batch with an id already pending (the primary key), repeated, or
        remembered through ``unique_for_s`` is rolled back whole here and sent again
        through the publish statement, which refuses or skips it as it says. A message
        over the size limit, or one that cannot be built, raises and rolls it all back.
        """
        statements = self.connection.statements
        try:
            async with conn.transaction():
                cursor = await conn.execute(self.connection.pool_statements["publish_begin"],
                                            self.connection.params({}))
                row = await cursor.fetchone()
                assert row is not None
                now = row[0]
                now_us = copy_format.timestamp_us(now)
                task_ids: list[str] = []
                queues: set[str] = set()
                async with conn.cursor().copy(statements["publish_copy"]) as copy:
                    block, size = [copy_format.HEADER], 0
                    for message in messages:
                        if message.unique_for_s:
                            raise _NotByCopy
                        _check_size(message, limit)
                        task_ids.append(message.task_id)
                        queues.add(message.queue)
                        row = copy_format.message_row(
                            message.task_id, message.queue, message.body, _priority(message.priority),
                            now_us if message.eta_ms is None else copy_format.epoch_ms_us(int(message.eta_ms)))
                        block.append(row)
                        size += len(row)
                        if size >= copy_format.BLOCK_BYTES:
                            await copy.write(b"".join(block))
                            block, size = [], 0
                    block.append(copy_format.TRAILER)
                    await copy.write(b"".join(block))
                cursor = await conn.execute(self.connection.pool_statements["publish_end"], self.connection.params({
                    "task_ids": task_ids, "queue_names": sorted(queues)}))
                row = await cursor.fetchone()
                if row is None or row[0]:
                    raise _NotByCopy  # an id is remembered through unique_for_s
        except (_NotByCopy, psycopg.errors.UniqueViolation):
            return False
        return True

    # --- reserving ------------------------------------------------------------------

    async def reserve(
        self, queues: Sequence[str], max_count: int, *, lease_ms: int, worker_id: str, timeout_s: float
    ) -> list[Delivery]:
        if max_count <= 0 or not queues:
            return []
        names = list(dict.fromkeys(queues))
        keys = [queue_key(q) for q in names]
        notifier = self.connection.notifier
        listener = self.connection.listener
        handoffs = self.connection.handoffs
        values = {"queues": names, "max_count": max_count, "lease_ms": lease_ms, "worker_id": worker_id}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        blind_poll_s = BLIND_POLL_S[0]
        woken = deferred = False
        inbox = handoffs.open(worker_id) if timeout_s > 0 else None  # None: no offers (handoff.py)
        try:
            while True:
                notices = [notifier.subscribe(key) for key in keys]
                handed_in = [] if inbox is None else [inbox.wake()]
                try:
                    live = timeout_s > 0 and await listener.listen_queues(names)
                    if inbox is not None and inbox.deliveries:
                        return self._handed(inbox, [], max_count, lease_ms)
                    # Woken by a notice: the message is leased first, and the chores wait for
                    # the next pass. A reclaim due then would put its round trip (~0.9 ms after
                    # idle) between the message and its task. Once per call, so a caller woken
                    # again and again for messages others take still runs them.
                    if woken and not deferred:
                        deferred = True
                    else:
                        await self.connection.housekeeping.run_if_due()
                        if loop.time() >= self._reclaim_at:
                            await self._reclaim(loop, lease_ms)
                    # Handed out before the commit when it leases anything (see the module's docstring).
                    rows = await self.connection.fetch("reserve", values)
                    if rows:
                        deliveries = [Delivery(row[0], row[1], row[2], row[3], to_ms(row[4]), is_revoked=row[5])
                                      for row in sorted(rows, key=lambda row: row[6])]
                        if isinstance(rows, LeasedRows):
                            self._leases.track(deliveries, rows.committed)
                        return self._handed(inbox, deliveries, max_count, lease_ms)
                    remaining_s = deadline - loop.time()
                    if remaining_s <= 0:
                        return self._handed(inbox, [], max_count, lease_ms)
                    offer = live and inbox is not None
                    if offer:
                        handoffs.offered.add(worker_id)
                    handoff_ms = min(lease_ms, handoff.HANDOFF_LEASE_MS)
                    [(db_now, next_event)] = await self.connection.fetch("reserve_status", {
                        "queues": names, "worker_id": worker_id, "free": max_count,
                        "channel": handoffs.channel if offer else None, "handoff_ms": handoff_ms,
                        "offer_ms": int(min(remaining_s, handoff.OFFER_S) * 1000)})
                    if inbox is not None:
                        inbox.set_clock(to_ms(db_now), handoff_ms)
                    wait_s = min(remaining_s, SAFETY_POLL_S if live else blind_poll_s)
                    until_due_s = None if next_event is None else max((next_event - db_now).total_seconds(), 0.001)
                    if until_due_s is not None and until_due_s <= wait_s:
                        wait_s = until_due_s
                    woken = await wait_for_any(notices + handed_in, wait_s)
                    if inbox is not None and inbox.deliveries:
                        return self._handed(inbox, [], max_count, lease_ms)
                    if woken:
                        blind_poll_s = BLIND_POLL_S[0]
                    else:
                        if wait_s == until_due_s:
                            self._reclaim_at = 0.0  # it waited for a lease's end, maybe: take back what ran out
                        elif wait_s == remaining_s:
                            # The caller's time is up with no notice: return, not one more reserve.
                            # Its next call reserves first, as every call does (notices between
                            # two calls have nobody to wake).
                            return []
                        if not live:
                            blind_poll_s = min(blind_poll_s * 2, BLIND_POLL_S[1])
                finally:
                    for key, notice in zip(keys, notices, strict=True):
                        notifier.unsubscribe(key, notice)
        finally:
            if inbox is not None:
                handoffs.close(inbox)  # what it was handed and did not take goes back to its queue

    def _handed(self, inbox: handoff.Inbox | None, deliveries: list[Delivery], max_count: int,
                lease_ms: int) -> list[Delivery]:
        """``deliveries`` and what the waiting call was handed, up to ``max_count``.

        A handed delivery holds the short hand-off lease: it is extended to ``lease_ms``
        in the background, and fenced calls on it wait for that (``LeaseCommits``), as on
        a lease that is still committing.
        """
        if inbox is None or not inbox.deliveries:
            return deliveries
        handed, late = inbox.take(max_count - len(deliveries))
        self.connection.handoffs.release(late)
        if handed:
            loop = asyncio.get_running_loop()
            confirmed = {d.task_id: loop.create_future() for d in handed}
            for d in handed:
                self._leases.track([d], confirmed[d.task_id])
            # Started on the loop's next turn: the caller starts the tasks first, so the
            # confirmation's own work (~0.2 ms of Python) never sits before a task's start.
            loop.call_soon(self._start_confirming, handed, lease_ms, confirmed)
        return deliveries + handed

    def _start_confirming(self, handed: list[Delivery], lease_ms: int,
                          confirmed: dict[str, asyncio.Future[bool]]) -> None:
        task = asyncio.ensure_future(self._confirm(handed, lease_ms, confirmed))
        self._confirming.add(task)
        task.add_done_callback(self._confirming.discard)

    async def _confirm(self, handed: list[Delivery], lease_ms: int,
                       confirmed: dict[str, asyncio.Future[bool]]) -> None:
        """Extend the hand-off leases to the full lease; each future says whether its lease was."""
        renewed: set[str] = set()
        try:
            renewed = await self._extend(handed, lease_ms)
        except Exception as exc:  # as a lease that did not commit: the task's calls on it are refused
            logger.warning("could not extend the lease of handed messages %s: %s", [d.task_id for d in handed], exc)
        finally:
            for d in handed:
                if not confirmed[d.task_id].done():
                    confirmed[d.task_id].set_result(d.task_id in renewed)

    async def _reclaim(self, loop: asyncio.AbstractEventLoop, lease_ms: int) -> None:
        """Take back the leases that ran out (the reclaim statement), committed before the reserve."""
        [(count,)] = await self.connection.fetch("reclaim", self._reclaim_args)
        self._reclaim_at = 0.0 if count >= RECLAIM_BATCH else loop.time() + min(RECLAIM_EVERY_S, lease_ms / 4000)

    # --- finishing ------------------------------------------------------------------

    async def renew(self, deliveries: Sequence[Delivery], lease_ms: int) -> list[str]:
        if not deliveries:
            return []
        void = await self._leases.settle(deliveries, forget=False)
        live = [d for d in deliveries if d.task_id not in void]
        renewed = await self._extend(live, lease_ms) if live else set()
        return [d.task_id for d in deliveries if d.task_id not in renewed]

    async def _extend(self, deliveries: Sequence[Delivery], lease_ms: int) -> set[str]:
        """The renew statement, without waiting on lease commits: the ids whose lease it extended."""
        rows = await self.connection.fetch("renew", {**fenced(deliveries), "lease_ms": lease_ms})
        renewed = {row[0]: to_ms(row[1]) for row in rows}
        for d in deliveries:
            if d.task_id in renewed:
                d.lease_expires_at_ms = renewed[d.task_id]
        return set(renewed)

    async def ack(self, deliveries: Sequence[Delivery], results: Sequence[ResultRecord] = ()) -> list[str]:
        if not deliveries and not results:
            return []
        void = await self._leases.settle(deliveries)
        if void:  # leases that never committed: refused, and their results dropped, as a stale worker's
            deliveries = [d for d in deliveries if d.task_id not in void]
            results = [r for r in results if r.task_id not in void]
            if not deliveries and not results:
                return list(void)
        result_values, _ = result_params(results)
        [row] = await self.connection.fetch("ack", {
            **fenced(deliveries), **result_values, "expires_ms": expires_ms(self.options.result_expires_s),
        })
        refused = [*void, *row[0]]
        for record in results:
            if record.state in READY_STATES and record.task_id not in refused:
                self.connection.notifier.notify(result_key(record.task_id))
        return refused

    async def release(self, deliveries: Sequence[Delivery]) -> list[str]:
        if not deliveries:
            return []
        void = await self._leases.settle(deliveries)  # not released: back on its own, or at lease expiry
        live = [d for d in deliveries if d.task_id not in void]
        [row] = await self.connection.fetch("release", fenced(live)) if live else [([],)]
        released = set(row[0])
        self.connection.notify_queues([d.queue for d in deliveries])
        return [d.task_id for d in deliveries if d.task_id not in released]

    async def retry(self, delivery: Delivery, body: bytes, eta_ms: int | None) -> bool:
        if await self._leases.settle([delivery]):
            return False  # the lease never committed
        [row] = await self.connection.fetch("retry", {
            "task_id": delivery.task_id, "token": delivery.fencing_token, "body": body,
            "eta": None if eta_ms is None else from_ms(eta_ms),
        })
        self.connection.notify_queues([delivery.queue])
        return bool(row[0])

    async def dead_letter(self, delivery: Delivery, reason: str) -> bool:
        if await self._leases.settle([delivery]):
            return False  # the lease never committed
        return await self.connection.execute("dead_letter", {
            "task_id": delivery.task_id, "token": delivery.fencing_token, "reason": reason,
        }) > 0

    # --- revoking and the dead-letter queue ------------------------------------------

    async def revoke(self, task_ids: Sequence[str], *, terminate: bool = False) -> None:
        if task_ids:
            await self.connection.execute("revoke", {
                "task_ids": list(dict.fromkeys(task_ids)), "terminate": terminate,
                "ttl_ms": max(1, int(self.options.revoked_ttl_s * 1000)),
            })

    async def revoked_among(self, task_ids: Sequence[str]) -> dict[str, bool]:
        if not task_ids:
            return {}
        rows = await self.connection.fetch("revoked_among", {"task_ids": list(task_ids)})
        return {row[0]: bool(row[1]) for row in rows}

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        if limit <= 0:
            return []
        rows = await self.connection.fetch("dead_letters", {"limit": limit})
        return [DeadLetter(r[0], r[1], bytes(r[2]), r[3], to_ms(r[4]), delivery_count=r[5], priority=r[6])
                for r in rows]

    async def requeue_dead_letters(self, task_ids: Sequence[str] | None = None) -> RequeueOutcome:
        wanted = [] if task_ids is None else list(dict.fromkeys(task_ids))
        if task_ids is not None and not wanted:
            return RequeueOutcome()
        # Not sent again after a lost reply: a first attempt that ran would make the ids it
        # requeued look pending.
        rows = await self.connection.fetch(
            "requeue_dead_letters", {"task_ids": wanted, "everything": task_ids is None}, retry=False)
        outcome = RequeueOutcome()
        queues = []
        for task_id, what, queue, _ in rows:
            if what == "requeued":
                outcome.requeued.append(task_id)
                queues.append(queue)
            else:
                outcome.skipped[task_id] = SKIPPED_PENDING if what == "pending" else SKIPPED_NOT_FOUND
        self.connection.notify_queues(queues)
        return outcome

    async def purge_dead_letters(self) -> int:
        return await self.connection.execute("purge_dead_letters", {})

    async def purge(self, queue: str) -> int:
        return await self.connection.execute("purge", {"queue": queue})

    async def queue_depths(self) -> dict[str, int]:
        rows = await self.connection.fetch("queue_depths", {})
        return {row[0]: int(row[1]) for row in rows}

    async def queue_stats(self) -> dict[str, QueueStats]:
        rows = await self.connection.fetch("queue_stats", {})
        return {row[0]: QueueStats(row[0], int(row[1]), int(row[2]), int(row[3]),
                                   None if row[4] is None else to_ms(row[4]), int(row[5]), int(row[6]), int(row[7]))
                for row in rows}

    async def dead_letter_count(self) -> int:
        [(count,)] = await self.connection.fetch("count_dead_letters", {})
        return int(count)

    # --- rate limits and the event log ------------------------------------------------

    async def take_rate_token(self, key: str, rate_per_s: float, capacity: float) -> float:
        [(tokens, took)] = await self.connection.fetch(
            "take_rate_token", {"key": key, "rate": rate_per_s, "capacity": capacity})
        return 0.0 if took else (1 - float(tokens)) / rate_per_s

    async def emit_events(self, events: Sequence[bytes], stats: Sequence[StatsRow] = ()) -> None:
        if events or stats:
            await self._add_stats(events, stats)

    async def record_stats(self, rows: Sequence[StatsRow]) -> None:
        if rows:
            await self._add_stats((), rows)

    async def _add_stats(self, events: Sequence[bytes], rows: Sequence[StatsRow]) -> None:
        items = sorted((row.minute, row.name, row.queue, metric, value)
                       for row in rows for metric, value in row.items())
        await self.connection.execute("add_stats", {
            "events": list(events), "events_max": self.options.events_max, "shard": self._stats_shard,
            "minutes": [i[0] for i in items], "names": [i[1] for i in items], "queues": [i[2] for i in items],
            "metrics": [i[3] for i in items], "values": [float(i[4]) for i in items],
        })

    async def read_stats(self, since_minute: int, until_minute: int) -> list[StatsRow]:
        rows = await self.connection.fetch("read_stats", {"since": since_minute, "until": until_minute})
        return rows_from_items(rows)

    async def emit_control(self, records: Sequence[bytes]) -> None:
        if records:
            await self.connection.execute(
                "emit_control", {"records": list(records), "control_max": self.options.control_max})

    async def read_control(self, after: str | None = None, limit: int = 100) -> list[tuple[str, bytes]]:
        if after is None:
            rows = await self.connection.fetch("newest_control", {"limit": limit})
        else:
            rows = await self.connection.fetch("control_after", {"after": int(after), "limit": limit})
        return [(str(row[0]), bytes(row[1])) for row in rows]

    async def read_events(self, after: str | None = None, limit: int = 1000) -> list[tuple[str, bytes]]:
        # An event's id is "<row>-<place in the row>" (0004_event_batches.sql).
        if after is None:
            rows = await self.connection.fetch("newest_events", {"limit": min(limit, self.options.events_max)})
            rows.reverse()
        else:
            row, _, n = after.partition("-")
            rows = await self.connection.fetch("events_after", {"row": int(row), "n": int(n or 0), "limit": limit})
        return [(f"{row[0]}-{row[1]}", bytes(row[2])) for row in rows]


def _refusal(exc: BaseException | None) -> DuplicateTaskError | None:
    """The duplicate id refuse_duplicate raised (psycopg's error, or Django's driver's), if it was that."""
    diag = getattr(exc, "diag", None)
    if diag is None or diag.message_primary != _DUPLICATE:
        return None
    task_id = diag.message_detail or ""
    if diag.message_hint == "remembered":
        return DuplicateTaskError.remembered(task_id)
    return DuplicateTaskError.pending(task_id)


def _check_size(message: OutgoingMessage, limit: int) -> None:
    """Refuse the batch, before it commits, if a message is over ``limit`` bytes."""
    size = len(message.body)
    if size > limit:
        raise MessageTooLarge(
            f"the message of task {_task_name(message.body)!r} (id {message.task_id}) is {size} bytes, over "
            f"the PostgreSQL broker's limit of {limit} bytes; send a reference to the data (a row id, a file "
            "name, an object's key) instead of the data, or raise ?max_message_size= (bytes) in the broker URL"
        )


def _priority(priority: int) -> int:
    return 0 if priority < 0 else 9 if priority > 9 else priority


def _eta(message: OutgoingMessage) -> datetime | None:
    """When the message is due, for the statements (None: now, in the database's clock)."""
    return None if message.eta_ms is None else from_ms(int(message.eta_ms))


def _task_name(body: bytes) -> str:
    try:
        name = msgspec.json.decode(body, type=_Named).task
    except msgspec.DecodeError:
        return "?"
    return name


class _Named(msgspec.Struct):
    task: str = "?"


def _without_repeats(messages: Sequence[OutgoingMessage], *, refuse: bool) -> list[OutgoingMessage]:
    """The batch with each id once: a repeated id is refused (or, ignoring, its later copies dropped)."""
    seen: set[str] = set()
    batch: list[OutgoingMessage] = []
    for msg in messages:
        if msg.task_id in seen:
            if refuse:
                raise DuplicateTaskError.pending(msg.task_id)
            continue
        seen.add(msg.task_id)
        batch.append(msg)
    return batch


def _statement_params(messages: Sequence[OutgoingMessage], limit: int,
                      refuse: bool) -> tuple[list[OutgoingMessage], dict[str, Any]]:
    """The batch checked for the publish statement (sizes, repeated ids), and its arrays."""
    for message in messages:
        _check_size(message, limit)
    batch = _without_repeats(messages, refuse=refuse)
    return batch, publish_params(batch, refuse=refuse)


def publish_params(messages: Sequence[OutgoingMessage], *, refuse: bool) -> dict[str, Any]:
    """The publish statement's arrays (one per column) for a batch without repeated ids."""
    return {
        "task_ids": [m.task_id for m in messages],
        "queues": [m.queue for m in messages],
        "bodies": [m.body for m in messages],
        "priorities": [_priority(m.priority) for m in messages],
        "etas": [_eta(m) for m in messages],
        "unique_ms": [max(1, int(m.unique_for_s * 1000)) if m.unique_for_s else None for m in messages],
        "refuse": refuse,
    }

