"""``redis://``, ``rediss://`` and ``redis+sentinel://``: the distributed default broker.

The URL and its options, the connection and the script calls are in
``connection.py``.

How it works: every operation is one Lua script (``scripts/verb-N.lua``; N is the
number of KEYS per queue, per record, or in all), loaded once per connection and called
with EVALSHA, so reserving, acking and renewing a whole batch are one round trip each and
atomic. Key names live in ``keys.py``. Deadlines use the server's clock. An idle
``reserve`` blocks in BLPOP on per-queue wake lists (publish, release and retry push a
token) for at most the caller's timeout and the time to the next due eta or lease
deadline, so it sends no commands while it waits. A dropped connection is retried by
redis-py with exponential back-off, logged once per outage. A retried publish, ack,
release, retry or dead-letter whose first attempt ran but lost its reply gets that reply
again and changes nothing (``includes/once.lua``): no message is stored twice, and no
call is refused because of its own first attempt.

A message whose task id is not UTF-8 (only a raw write into Redis makes one) is
dead-lettered by ``reserve`` on its own, with the reason, and the rest of its batch is
handed out. Dead letters show such an id with ``\\xNN`` for each byte that is not UTF-8,
and ``requeue_dead_letters`` takes it in that form.

A task id is unique within its queue: publishing an id still pending in the same queue
is refused, but the same id pending in another queue is not seen (a cross-queue index
would put every queue in one cluster slot). Keys of one queue share a hash tag, but
scripts spanning several queues, or a queue and results, need a single server (standalone
or Sentinel); Redis Cluster is not supported yet.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from typing import Any

from ...exceptions import DuplicateTaskError
from ...message import READY_STATES, DeadLetter, Delivery, ResultRecord, encode_record
from ...stats import KEEP_MINUTES, StatsRow, rows_from_items
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
from .connection import RedisConnection, new_call_id, parse_url
from .connection import as_text as _text
from .keys import Keys, QueueKeys

__all__ = ["RedisBroker", "RedisConnection", "parse_url"]

logger = logging.getLogger("celeriac.redis")

_ESCAPED_BYTE = re.compile(rb"\\x([89a-f][0-9a-f])")  # what backslashreplace writes for a non-UTF-8 byte


def shown_text(value: bytes | str) -> str:
    """Stored text for people: a byte that is not UTF-8 shows as ``\\xNN``."""
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else value


def stored_ids(task_id: str) -> list[bytes]:
    """The stored ids that ``shown_text`` shows as ``task_id``: itself, and, if it holds
    ``\\xNN`` escapes, the bytes they stand for (a raw id that is not UTF-8)."""
    raw = task_id.encode("utf-8", "surrogateescape")  # an argv with such bytes arrives escaped so
    found = [raw]
    if b"\\x" in raw:
        unescaped = _ESCAPED_BYTE.sub(lambda m: bytes([int(m[1], 16)]), raw)
        if unescaped != raw and shown_text(unescaped) == task_id:
            found.append(unescaped)
    return found


def result_args(
    keys: Keys, records: Sequence[ResultRecord], skip_ids: frozenset[str] | set[str] = frozenset()
) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV for the records, as result.lua's callers read them (4 ARGV per record)."""
    result_keys: list[str] = []
    args: list[Any] = []
    for record in records:
        if record.task_id in skip_ids:
            continue
        result_keys.append(keys.result(record.task_id))
        args += (record.task_id, record.fencing_token, "1" if record.state in READY_STATES else "0",
                 encode_record(record))
    return result_keys, args


def _reserve_args(keys: Keys, options: BrokerOptions) -> tuple[Any, ...]:
    """reserve-12.lua's ARGV after max_count and lease_ms: dead-lettering and its FAILURE record."""
    # Placeholders reserve-12.lua fills in; the record's JSON itself comes from message.py.
    record = lost_record("@celeriac-task-id@", "@celeriac-reason@", 2222222222)
    record.date_done_ms = 1111111111111
    record_template = encode_record(record).decode()
    n_sentinel = "918273645"
    reason_template = max_deliveries_reason(int(n_sentinel), options.max_deliveries).replace(n_sentinel, "{n}", 1)
    return (options.max_deliveries, reason_template, record_template, keys.result_prefix,
            keys.result_channel_prefix, expires_ms(options.result_expires_s), keys.revoked_prefix)


def expires_ms(expires_s: float | None) -> int:
    return max(1, int(expires_s * 1000)) if expires_s else 0


# --- the broker ---------------------------------------------------------------------


class RedisBroker(OnSharedConnection[RedisConnection]):
    def __init__(
        self, url: str, options: BrokerOptions | None = None, connection: RedisConnection | None = None
    ) -> None:
        self.url = url
        self.options = options or BrokerOptions()
        self.connection = connection or RedisConnection(url)
        self.keys = self.connection.keys
        self._registered_queues: set[str] = set()
        self._reserve_keys: dict[tuple[str, ...], tuple[list[str], list[str]]] = {}
        self._reserve_args = _reserve_args(self.keys, self.options)

    async def skew_clock(self, ms: int) -> None:
        # The scripts read the clock (includes/clock.lua); the connection rebuilds them.
        await self.connection.skew_clock(ms)

    # --- publishing -------------------------------------------------------------------

    async def publish(self, messages: Sequence[OutgoingMessage], *, on_duplicate: str = "error") -> None:
        if not messages:
            return
        group_of: dict[str, int] = {}
        keys: list[str] = []
        args: list[Any] = ["1" if on_duplicate == "ignore" else "0"]
        for msg in messages:
            g = group_of.get(msg.queue)
            if g is None:
                g = group_of[msg.queue] = len(group_of) + 1
                qk = self.keys.queue(msg.queue)
                keys += (qk.ready, qk.scheduled, qk.bodies, qk.priorities, qk.seq, qk.wake, qk.unique)
            priority = 0 if msg.priority < 0 else 9 if msg.priority > 9 else msg.priority
            args += (g, msg.task_id, priority, "" if msg.eta_ms is None else int(msg.eta_ms), msg.body,
                     max(1, int(msg.unique_for_s * 1000)) if msg.unique_for_s else "")
        new_queues = group_of.keys() - self._registered_queues
        if new_queues:
            await self.connection.client.sadd(self.keys.queues, *new_queues)
            self._registered_queues |= new_queues
        call_key = self.keys.queue(messages[0].queue).call(new_call_id())
        reply = await self.connection.run("publish", keys, args, call_key=call_key)
        if reply[0] == -1:
            raise DuplicateTaskError.pending(_text(reply[1]))
        if reply[0] == -2:
            raise DuplicateTaskError.remembered(_text(reply[1]))

    # --- reserving ------------------------------------------------------------------

    def _keys_for_reserve(self, queues: tuple[str, ...]) -> tuple[list[str], list[str]]:
        found = self._reserve_keys.get(queues)
        if found is None:
            keys: list[str] = []
            for queue in queues:
                qk = self.keys.queue(queue)
                keys += (qk.ready, qk.scheduled, qk.leases, qk.bodies, qk.priorities, qk.deliveries,
                         qk.expiries, qk.seq, qk.wake, qk.dead, qk.dead_letters, qk.counters)
            found = self._reserve_keys[queues] = (keys, [self.keys.queue(q).wake for q in queues])
        return found

    async def reserve(
        self, queues: Sequence[str], max_count: int, *, lease_ms: int, worker_id: str, timeout_s: float
    ) -> list[Delivery]:
        if max_count <= 0 or not queues:
            return []
        queue_names = tuple(queues)
        keys, wake_keys = self._keys_for_reserve(queue_names)
        args = (max_count, lease_ms, *self._reserve_args)
        connection = self.connection
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        wait_on: Sequence[str] = ()
        wait_s = 0.0
        while True:
            reply = await connection.run("reserve", keys, args, after_blpop=wait_on, blpop_s=wait_s)
            if len(reply) > 2:
                lease_expires_at_ms = reply[0] + lease_ms
                deliveries: list[Delivery] = []
                for i in range(2, len(reply), 5):
                    queue, raw_id, token = queue_names[reply[i] - 1], reply[i + 1], reply[i + 3]
                    try:
                        task_id = raw_id.decode()
                    except UnicodeDecodeError:
                        await self._dead_letter_undecodable(queue, raw_id, token)
                        continue
                    deliveries.append(Delivery(task_id, queue, reply[i + 2], token, lease_expires_at_ms,
                                               is_revoked=reply[i + 4] == 1))
                if deliveries:
                    return deliveries
                wait_on, wait_s = (), 0.0  # all of them were dead-lettered: look again at once
                continue
            wait_s = min(deadline - loop.time(), connection.max_block_s)
            if wait_s <= 0:
                return []
            next_event_in_ms = reply[1]
            if next_event_in_ms >= 0:
                wait_s = min(wait_s, next_event_in_ms / 1000)
            wait_on = wake_keys  # the next reserve runs as soon as a wake token (or the wait) ends

    async def _dead_letter_undecodable(self, queue: str, raw_id: bytes, token: int) -> None:
        """Dead-letter a reserved message whose id no worker can take, alone, with the reason.

        If that fails too, its lease runs out and a later reserve tries again.
        """
        shown = shown_text(raw_id)
        reason = (f"its task id {shown} is not valid UTF-8 (shown with \\xNN for each byte that is not), so "
                  "no worker can run it; only a raw write into Redis makes such a message")
        try:
            await self._dead_letter(queue, raw_id, token, reason)
        except Exception as exc:
            logger.warning("could not dead-letter the message %s of queue %r (%s): its id is not UTF-8; "
                           "its lease will run out and it is tried again", shown, queue, exc)
        else:
            logger.warning("dead-lettered the message %s of queue %r: %s", shown, queue, reason)

    # --- finishing ------------------------------------------------------------------

    def _fenced_args(
        self, deliveries: Sequence[Delivery], key_names: tuple[str, ...]
    ) -> tuple[list[str], list[Any]]:
        """KEYS (the named keys of each queue involved) and ARGV triples (queue index, id, token)."""
        group_of: dict[str, int] = {}
        keys: list[str] = []
        args: list[Any] = []
        for d in deliveries:
            g = group_of.get(d.queue)
            if g is None:
                g = group_of[d.queue] = len(group_of) + 1
                qk = self.keys.queue(d.queue)
                keys += [getattr(qk, name) for name in key_names]
            args += (g, d.task_id, d.fencing_token)
        return keys, args

    async def renew(self, deliveries: Sequence[Delivery], lease_ms: int) -> list[str]:
        if not deliveries:
            return []
        keys, args = self._fenced_args(deliveries, ("leases", "deliveries"))
        reply = await self.connection.run("renew", keys, [lease_ms, *args])
        lost = [_text(task_id) for task_id in reply[1:]]
        lease_expires_at_ms = reply[0]
        for d in deliveries:
            d.lease_expires_at_ms = lease_expires_at_ms
        return lost

    async def ack(self, deliveries: Sequence[Delivery], results: Sequence[ResultRecord] = ()) -> list[str]:
        if not deliveries and not results:
            return []
        keys, fenced = self._fenced_args(deliveries, ("leases", "bodies", "priorities", "deliveries", "expiries"))
        result_keys, records = result_args(self.keys, results)
        args = [len(keys) // 5, len(deliveries), expires_ms(self.options.result_expires_s),
                self.keys.result_channel_prefix, *fenced, *records]
        call_key = self.keys.queue(deliveries[0].queue).call if deliveries else self.keys.call
        reply = await self.connection.run("ack", keys + result_keys, args, call_key=call_key(new_call_id()))
        return [_text(task_id) for task_id in reply]

    async def release(self, deliveries: Sequence[Delivery]) -> list[str]:
        if not deliveries:
            return []
        keys, args = self._fenced_args(deliveries, ("leases", "deliveries", "priorities", "ready", "seq", "wake"))
        call_key = self.keys.queue(deliveries[0].queue).call(new_call_id())
        reply = await self.connection.run("release", keys, args, call_key=call_key)
        return [_text(task_id) for task_id in reply]

    async def retry(self, delivery: Delivery, body: bytes, eta_ms: int | None) -> bool:
        qk = self.keys.queue(delivery.queue)
        keys = [qk.leases, qk.bodies, qk.priorities, qk.deliveries, qk.expiries, qk.ready, qk.scheduled, qk.seq,
                qk.wake]
        args = [delivery.task_id, delivery.fencing_token, body, "" if eta_ms is None else int(eta_ms)]
        return bool(await self.connection.run("retry", keys, args, call_key=qk.call(new_call_id())))

    async def dead_letter(self, delivery: Delivery, reason: str) -> bool:
        return await self._dead_letter(delivery.queue, delivery.task_id, delivery.fencing_token, reason)

    async def _dead_letter(self, queue: str, task_id: str | bytes, token: int, reason: str) -> bool:
        qk = self.keys.queue(queue)
        keys = [qk.leases, qk.bodies, qk.priorities, qk.deliveries, qk.expiries, qk.dead, qk.dead_letters]
        reply = await self.connection.run("dead-letter", keys, [task_id, token, reason],
                                          call_key=qk.call(new_call_id()))
        return bool(reply)

    # --- revoking and the dead-letter queue ------------------------------------------

    async def revoke(self, task_ids: Sequence[str], *, terminate: bool = False) -> None:
        if not task_ids:
            return
        ttl_ms = max(1, int(self.options.revoked_ttl_s * 1000))
        pipe = self.connection.client.pipeline(transaction=False)
        for task_id in task_ids:
            pipe.set(self.keys.revoked(task_id), "1" if terminate else "0", px=ttl_ms)
        await pipe.execute()

    async def revoked_among(self, task_ids: Sequence[str]) -> dict[str, bool]:
        if not task_ids:
            return {}
        values = await self.connection.client.mget([self.keys.revoked(t) for t in task_ids])
        return {t: v in (b"1", "1") for t, v in zip(task_ids, values, strict=True) if v is not None}

    async def _queue_names(self) -> list[str]:
        return sorted(_text(q) for q in await self.connection.client.smembers(self.keys.queues))

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        queues = await self._queue_names()
        if not queues or limit <= 0:
            return []
        keys = [k for q in queues for k in (self.keys.queue(q).dead, self.keys.queue(q).dead_letters)]
        reply = await self.connection.run("list-dead-letters", keys, [limit])
        found = []
        for i in range(0, len(reply), 7):
            # The score is the failure time in us, unique and rising within a queue (in ms
            # if written by an earlier build): it orders dead letters as they were written.
            score = float(reply[i + 2])
            failed_at_us = int(score if score >= 1e14 else score * 1000)
            found.append((failed_at_us, DeadLetter(
                shown_text(reply[i + 1]), queues[reply[i] - 1], reply[i + 4], shown_text(reply[i + 3]),
                failed_at_us // 1000, delivery_count=int(reply[i + 5]), priority=int(reply[i + 6]),
            )))
        found.sort(key=lambda pair: pair[0])
        return [dl for _, dl in found[:limit]]

    async def requeue_dead_letters(self, task_ids: Sequence[str] | None = None) -> RequeueOutcome:
        wanted = None if task_ids is None else list(dict.fromkeys(task_ids))
        queues = await self._queue_names()
        if not queues or wanted == []:
            return RequeueOutcome(skipped=dict.fromkeys(wanted or (), SKIPPED_NOT_FOUND))
        keys: list[str] = []
        for queue in queues:
            qk = self.keys.queue(queue)
            keys += (qk.dead, qk.dead_letters, qk.bodies, qk.priorities, qk.deliveries, qk.ready, qk.seq, qk.wake)
        # An id as dead_letters() shows it may stand for a stored id that is not UTF-8 (stored_ids).
        args = ["all"] if wanted is None else ["ids", *(raw for task_id in wanted for raw in stored_ids(task_id))]
        reply = await self.connection.run("requeue-dead-letters", keys, args)
        outcome = RequeueOutcome()
        for i in range(0, len(reply), 2):
            task_id, status = shown_text(reply[i]), int(reply[i + 1])
            if status == 1:
                outcome.requeued.append(task_id)
            elif status == 0 or task_id not in outcome.skipped:  # of an id's two stored forms, pending wins
                outcome.skipped[task_id] = SKIPPED_PENDING if status == 0 else SKIPPED_NOT_FOUND
        for task_id in outcome.requeued:
            outcome.skipped.pop(task_id, None)  # its other stored form was not found
        return outcome

    async def purge_dead_letters(self) -> int:
        queues = await self._queue_names()
        if not queues:
            return 0
        keys = [k for q in queues for k in (self.keys.queue(q).dead, self.keys.queue(q).dead_letters)]
        return int(await self.connection.run("purge-dead-letters", keys, []))

    async def purge(self, queue: str) -> int:
        qk: QueueKeys = self.keys.queue(queue)
        keys = [qk.ready, qk.scheduled, qk.bodies, qk.priorities, qk.deliveries, qk.expiries]
        return int(await self.connection.run("purge", keys, []))

    # --- rate limits and the event log ------------------------------------------------

    async def take_rate_token(self, key: str, rate_per_s: float, capacity: float) -> float:
        wait_s = await self.connection.run("take-rate-token", [self.keys.rate_bucket(key)], [rate_per_s, capacity])
        return float(wait_s)

    async def emit_events(self, events: Sequence[bytes], stats: Sequence[StatsRow] = ()) -> None:
        if stats:
            await self._record_stats(events, stats)
        elif events:
            await self.connection.run("emit-events", [self.keys.events], [self.options.events_max, *events])

    async def record_stats(self, rows: Sequence[StatsRow]) -> None:
        if rows:
            await self._record_stats((), rows)

    async def _record_stats(self, events: Sequence[bytes], rows: Sequence[StatsRow]) -> None:
        keys = [self.keys.events]
        index_of: dict[int, int] = {}
        items: list[Any] = []
        for row in rows:
            k = index_of.get(row.minute)
            if k is None:
                keys.append(self.keys.stats(row.minute))
                k = index_of[row.minute] = len(keys)
            prefix = f"{row.name}\0{row.queue}\0"
            for metric, value in row.items():
                items += (k, prefix + metric, repr(float(value)))
        await self.connection.run("record-stats", keys, [self.options.events_max, len(events), *events,
                                                         (KEEP_MINUTES + 1) * 60_000, *items])

    async def read_stats(self, since_minute: int, until_minute: int) -> list[StatsRow]:
        minutes = range(since_minute, until_minute + 1)
        if not minutes:
            return []
        pipe = self.connection.client.pipeline(transaction=False)
        for minute in minutes:
            pipe.hgetall(self.keys.stats(minute))
        found: list[tuple[int, str, str, str, float]] = []
        for minute, fields in zip(minutes, await pipe.execute(), strict=True):
            for raw_field, raw_value in fields.items():
                name, _, rest = _text(raw_field).partition("\0")
                queue, _, metric = rest.partition("\0")
                found.append((minute, name, queue, metric, float(raw_value)))
        return rows_from_items(found)

    async def emit_control(self, records: Sequence[bytes]) -> None:
        if records:
            await self.connection.run("emit-events", [self.keys.control], [self.options.control_max, *records])

    async def read_control(self, after: str | None = None, limit: int = 100) -> list[tuple[str, bytes]]:
        return await self._read_stream(self.keys.control, after, limit)

    async def read_events(self, after: str | None = None, limit: int = 1000) -> list[tuple[str, bytes]]:
        return await self._read_stream(self.keys.events, after, limit)

    async def _read_stream(self, key: str, after: str | None, limit: int) -> list[tuple[str, bytes]]:
        client = self.connection.client
        entries: Any  # [(id, {b"e": body})]
        if after is None:
            entries = (await client.xrevrange(key, count=limit))[::-1]  # type: ignore[index]
        else:
            entries = await client.xrange(key, min=f"({after}", count=limit)
        return [(entry_id.decode(), fields[b"e"]) for entry_id, fields in entries]

    async def queue_depths(self) -> dict[str, int]:
        queues = await self._queue_names()
        if not queues:
            return {}
        keys = [k for q in queues for k in (self.keys.queue(q).ready, self.keys.queue(q).scheduled)]
        counts = await self.connection.run("depths", keys, [])
        return {q: int(n) for q, n in zip(queues, counts, strict=True) if n}

    async def queue_stats(self) -> dict[str, QueueStats]:
        queues = await self._queue_names()
        if not queues:
            return {}
        keys: list[str] = []
        for queue in queues:
            qk = self.keys.queue(queue)
            keys += (qk.ready, qk.scheduled, qk.leases, qk.dead_letters, qk.counters)
        reply = await self.connection.run("queue-stats", keys, [])
        found = {}
        for g, queue in enumerate(queues):
            queued, scheduled, leased, oldest, dead, expired, reclaimed = (int(n) for n in reply[7 * g : 7 * g + 7])
            if queued or scheduled or leased or dead or expired:
                found[queue] = QueueStats(queue, queued, scheduled, leased, oldest if oldest >= 0 else None, dead,
                                          expired, reclaimed)
        return found

    async def dead_letter_count(self) -> int:
        queues = await self._queue_names()
        if not queues:
            return 0
        pipe = self.connection.client.pipeline(transaction=False)
        for queue in queues:
            pipe.hlen(self.keys.queue(queue).dead_letters)
        return sum(int(n) for n in await pipe.execute())
