"""``redis://``, ``rediss://`` and ``redis+sentinel://``: the distributed default broker.

The URL and its options, the connection and the script calls are in
``redis_connection.py``.

How it works: every operation is one Lua script (``redis_scripts/verb-N.lua``; N is the
number of KEYS per queue, per record, or in all), loaded once per connection and called
with EVALSHA, so reserving, acking and renewing a whole batch are one round trip each and
atomic. Key names live in ``redis_keys.py``. Deadlines use the server's clock. An idle
``reserve`` blocks in BLPOP on per-queue wake lists (publish, release and retry push a
token) for at most the caller's timeout and the time to the next due eta or lease
deadline, so it sends no commands while it waits. A dropped connection is retried by
redis-py with exponential back-off, logged once per outage.

A task id is unique within its queue: publishing an id still pending in the same queue
is refused, but the same id pending in another queue is not seen (a cross-queue index
would put every queue in one cluster slot). Keys of one queue share a hash tag, but
scripts spanning several queues, or a queue and results, need a single server (standalone
or Sentinel); Redis Cluster is not supported yet.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from ..exceptions import DuplicateTaskError
from ..message import READY_STATES, DeadLetter, Delivery, ResultRecord, encode_record
from .base import BrokerOptions, OutgoingMessage, lost_record, max_deliveries_reason
from .redis_connection import RedisConnection, parse_url
from .redis_connection import as_text as _text
from .redis_keys import Keys, QueueKeys

__all__ = ["RedisBroker", "RedisConnection", "parse_url"]


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
    """reserve-11.lua's ARGV after max_count and lease_ms: dead-lettering and its FAILURE record."""
    # Placeholders reserve-11.lua fills in; the record's JSON itself comes from message.py.
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


class RedisBroker:
    def __init__(self, url: str, options: BrokerOptions | None = None) -> None:
        self.url = url
        self.options = options or BrokerOptions()
        self.connection = RedisConnection(url)
        self.keys = self.connection.keys
        self._is_open = False
        self._registered_queues: set[str] = set()
        self._reserve_keys: dict[tuple[str, ...], tuple[list[str], list[str]]] = {}
        self._reserve_args = _reserve_args(self.keys, self.options)

    async def connect(self) -> None:
        if not self._is_open:
            await self.connection.open()
            self._is_open = True

    async def close(self) -> None:
        if self._is_open:
            self._is_open = False
            await self.connection.close()

    def stores_results_with_ack(self, store: object) -> bool:
        other = getattr(store, "connection", None)
        return isinstance(other, RedisConnection) and other.target.data_id == self.connection.target.data_id

    def shared_connection_for(self) -> RedisConnection:
        """The connection a result store on the same URL uses, so acks and results share a call."""
        return self.connection

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
        reply = await self.connection.run("publish", keys, args)
        if reply[0] == -1:
            raise DuplicateTaskError(
                f"task id {_text(reply[1])!r} is already pending or running; pick a new id, or "
                "pass on_duplicate='ignore' to skip it"
            )
        if reply[0] == -2:
            raise DuplicateTaskError(
                f"task id {_text(reply[1])!r} was published with unique_for_s a short while ago and "
                "is refused until that runs out; pick a new id, or pass on_duplicate='ignore' to skip it"
            )

    # --- reserving ------------------------------------------------------------------

    def _keys_for_reserve(self, queues: tuple[str, ...]) -> tuple[list[str], list[str]]:
        found = self._reserve_keys.get(queues)
        if found is None:
            keys: list[str] = []
            for queue in queues:
                qk = self.keys.queue(queue)
                keys += (qk.ready, qk.scheduled, qk.leases, qk.bodies, qk.priorities, qk.deliveries,
                         qk.expiries, qk.seq, qk.wake, qk.dead, qk.dead_letters)
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
                return [
                    Delivery(reply[i + 1].decode(), queue_names[reply[i] - 1], reply[i + 2], reply[i + 3],
                             lease_expires_at_ms, is_revoked=reply[i + 4] == 1)
                    for i in range(2, len(reply), 5)
                ]
            wait_s = min(deadline - loop.time(), connection.max_block_s)
            if wait_s <= 0:
                return []
            next_event_in_ms = reply[1]
            if next_event_in_ms >= 0:
                wait_s = min(wait_s, next_event_in_ms / 1000)
            wait_on = wake_keys  # the next reserve runs as soon as a wake token (or the wait) ends

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
        reply = await self.connection.run("ack", keys + result_keys, args)
        return [_text(task_id) for task_id in reply]

    async def release(self, deliveries: Sequence[Delivery]) -> list[str]:
        if not deliveries:
            return []
        keys, args = self._fenced_args(deliveries, ("leases", "deliveries", "priorities", "ready", "seq", "wake"))
        reply = await self.connection.run("release", keys, args)
        return [_text(task_id) for task_id in reply]

    async def retry(self, delivery: Delivery, body: bytes, eta_ms: int | None) -> bool:
        qk = self.keys.queue(delivery.queue)
        keys = [qk.leases, qk.bodies, qk.priorities, qk.deliveries, qk.expiries, qk.ready, qk.scheduled, qk.seq,
                qk.wake]
        args = [delivery.task_id, delivery.fencing_token, body, "" if eta_ms is None else int(eta_ms)]
        return bool(await self.connection.run("retry", keys, args))

    async def dead_letter(self, delivery: Delivery, reason: str) -> bool:
        qk = self.keys.queue(delivery.queue)
        keys = [qk.leases, qk.bodies, qk.priorities, qk.deliveries, qk.expiries, qk.dead, qk.dead_letters]
        return bool(await self.connection.run("dead-letter", keys, [delivery.task_id, delivery.fencing_token, reason]))

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
        found = [
            DeadLetter(_text(reply[i + 1]), queues[reply[i] - 1], reply[i + 4], _text(reply[i + 3]),
                       int(float(reply[i + 2])), delivery_count=int(reply[i + 5]), priority=int(reply[i + 6]))
            for i in range(0, len(reply), 7)
        ]
        found.sort(key=lambda dl: dl.failed_at_ms)
        return found[:limit]

    async def requeue_dead_letters(self, task_ids: Sequence[str] | None = None) -> int:
        queues = await self._queue_names()
        if not queues or (task_ids is not None and not task_ids):
            return 0
        keys: list[str] = []
        for queue in queues:
            qk = self.keys.queue(queue)
            keys += (qk.dead, qk.dead_letters, qk.bodies, qk.priorities, qk.deliveries, qk.ready, qk.seq, qk.wake)
        return int(await self.connection.run("requeue-dead-letters", keys, ["*"] if task_ids is None else task_ids))

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

    async def emit_events(self, events: Sequence[bytes]) -> None:
        if events:
            await self.connection.run("emit-events", [self.keys.events], [self.options.events_max, *events])

    async def read_events(self, after: str | None = None, limit: int = 1000) -> list[tuple[str, bytes]]:
        client = self.connection.client
        entries: Any  # [(id, {b"e": body})]
        if after is None:
            entries = (await client.xrevrange(self.keys.events, count=limit))[::-1]  # type: ignore[index]
        else:
            entries = await client.xrange(self.keys.events, min=f"({after}", count=limit)
        return [(entry_id.decode(), fields[b"e"]) for entry_id, fields in entries]

    async def queue_depths(self) -> dict[str, int]:
        queues = await self._queue_names()
        if not queues:
            return {}
        keys = [k for q in queues for k in (self.keys.queue(q).ready, self.keys.queue(q).scheduled)]
        counts = await self.connection.run("depths", keys, [])
        return {q: int(n) for q, n in zip(queues, counts, strict=True) if n}
