"""``redis://`` result store: fenced records with a TTL, and pub/sub wake-ups for ``get()``.

Records are the msgspec JSON of ``ResultRecord`` under ``P:result:<id>``, written by a
script that refuses a lower fencing token and sets the expiry in the same SET. Writing a
ready record PUBLISHes on ``P:result-ready:<id>``; ``wait_ready`` subscribes first and
reads the key after the server confirmed the subscription, so no wake-up falls in between.
All waiters of one store share one pub/sub connection. With the broker on the same URL
the store shares the broker's client, and the broker writes results within its acks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Sequence
from typing import Any

from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from ...message import READY_STATES, GroupProgress, ResultRecord, decode_record, encode_record
from ..shared import OnSharedConnection
from .connection import RedisConnection
from .transport import expires_ms, result_args

logger = logging.getLogger("celeriac.redis")

FETCH_CHUNK = 1000  # ids per MGET


class RedisResultStore(OnSharedConnection[RedisConnection]):
    def __init__(
        self, url: str, expires_s: float | None = 86400.0, connection: RedisConnection | None = None
    ) -> None:
        self.url = url
        self.expires_s = expires_s
        self.connection = connection if connection is not None else RedisConnection(url)
        self.keys = self.connection.keys
        self._notices: ReadyNotices | None = None

    async def close(self) -> None:
        if self._notices is not None:
            notices, self._notices = self._notices, None
            await notices.close()
        await super().close()

    async def store(self, records: Sequence[ResultRecord]) -> list[str]:
        if not records:
            return []
        keys, args = result_args(self.keys, records)
        reply = await self.connection.run(
            "store-results", keys, [expires_ms(self.expires_s), self.keys.result_channel_prefix, *args]
        )
        return [task_id.decode() for task_id in reply]

    async def fetch(self, task_id: str) -> ResultRecord | None:
        raw = await self.connection.client.get(self.keys.result(task_id))
        return None if raw is None else decode_record(raw)

    async def fetch_many(self, task_ids: Sequence[str]) -> dict[str, ResultRecord]:
        found: dict[str, ResultRecord] = {}
        client = self.connection.client
        for start in range(0, len(task_ids), FETCH_CHUNK):
            chunk = task_ids[start : start + FETCH_CHUNK]
            for raw in await client.mget([self.keys.result(t) for t in chunk]):
                if raw is not None:
                    record = decode_record(raw)
                    found[record.task_id] = record
        return found

    async def wait_ready(self, task_id: str, timeout_s: float | None) -> ResultRecord | None:
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s

        def remaining_s() -> float | None:
            return None if deadline is None else deadline - loop.time()

        if self._notices is None:
            self._notices = ReadyNotices(self.connection)
        notices = self._notices
        channel = self.keys.result_channel(task_id).encode()
        while True:
            notice = await notices.subscribe(channel, remaining_s())
            try:
                while True:
                    record = await self.fetch(task_id)
                    left_s = remaining_s()
                    if (record is not None and record.state in READY_STATES) or (left_s is not None and left_s <= 0):
                        return record
                    await asyncio.wait([notice], timeout=left_s)
                    if not notice.done():
                        continue  # timed out: the next fetch is the last
                    if not notice.result():
                        break  # the subscription may have lapsed: subscribe again
                    notice = notices.rearm(channel, notice)
            finally:
                await notices.release(channel, notice)

    async def forget(self, task_id: str) -> None:
        await self.connection.client.delete(self.keys.result(task_id))

    async def record_group_member(
        self, group_id: str, member_id: str, total: int, record: ResultRecord
    ) -> GroupProgress:
        keys = [self.keys.result(record.task_id), self.keys.group_done(group_id)]
        args = [member_id, total, record.fencing_token, "1" if record.state in READY_STATES else "0",
                encode_record(record), expires_ms(self.expires_s), self.keys.result_channel(record.task_id)]
        done, newly_complete = await self.connection.run("record-group-member", keys, args)
        return GroupProgress(int(done), total, bool(newly_complete))

    async def save_group(self, group_id: str, member_ids: Sequence[str]) -> None:
        ttl_ms = expires_ms(self.expires_s) or None
        await self.connection.client.set(self.keys.group(group_id), json.dumps(list(member_ids)), px=ttl_ms)

    async def restore_group(self, group_id: str) -> list[str] | None:
        raw = await self.connection.client.get(self.keys.group(group_id))
        return None if raw is None else list(json.loads(raw))


class ReadyNotices:
    """One pub/sub connection shared by every ``wait_ready`` of a store.

    A waiter subscribes to its task's channel and waits for the server's confirmation
    before it reads the record, so a PUBLISH after the read is never missed. Its notice
    (a future) resolves True on a message, or False when the subscription may have
    lapsed (an unsubscribe raced a subscribe, or the connection was re-established and
    messages may have been lost): the waiter then reads again and re-subscribes.
    """

    def __init__(self, connection: RedisConnection) -> None:
        self.connection = connection
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiters: dict[bytes, set[asyncio.Future[bool]]] = {}
        self._confirmations: dict[bytes, deque[asyncio.Future[None]]] = {}
        self._connecting = asyncio.Lock()

    async def subscribe(self, channel: bytes, timeout_s: float | None) -> asyncio.Future[bool]:
        """Subscribe to ``channel``; return once the server confirmed it (or at ``timeout_s``)."""
        loop = asyncio.get_running_loop()
        notice: asyncio.Future[bool] = loop.create_future()
        confirmed: asyncio.Future[None] = loop.create_future()
        self._waiters.setdefault(channel, set()).add(notice)
        self._confirmations.setdefault(channel, deque()).append(confirmed)
        try:
            try:
                if self._pubsub is None:
                    async with self._connecting:
                        if self._pubsub is None:
                            # Connected before anyone subscribes: redis-py's PubSub takes a
                            # connection on its first command, and concurrent first commands
                            # would each take one (and leave all but the last subscribed).
                            pubsub = self.connection.client.pubsub()
                            await pubsub.connect()  # type: ignore[no-untyped-call]
                            self._pubsub = pubsub
                await self._pubsub.subscribe(channel)
                if self._reader is None or self._reader.done():
                    self._reader = asyncio.create_task(self._read(self._pubsub), name="celeriac-redis-results")
                await asyncio.wait([confirmed], timeout=timeout_s)
            finally:
                self._drop_confirmation(channel, confirmed)
            if confirmed.done():
                confirmed.result()  # raises if the reader gave up on the connection
        except BaseException:
            await self.release(channel, notice)
            raise
        return notice

    def _drop_confirmation(self, channel: bytes, confirmed: asyncio.Future[None]) -> None:
        queue = self._confirmations.get(channel)
        if queue is not None and confirmed in queue:
            queue.remove(confirmed)
        if queue is not None and not queue:
            del self._confirmations[channel]

    def rearm(self, channel: bytes, notice: asyncio.Future[bool]) -> asyncio.Future[bool]:
        """Swap a fired notice for a fresh one on the same, still-live subscription."""
        fresh: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(channel, set())
        waiters.discard(notice)
        waiters.add(fresh)
        return fresh

    async def release(self, channel: bytes, notice: asyncio.Future[bool]) -> None:
        waiters = self._waiters.get(channel)
        if waiters is None:
            return
        waiters.discard(notice)
        if not waiters:
            del self._waiters[channel]
            if not self._waiters and not self._confirmations and self._reader is not None:
                # Nobody waits: stop reading, so an idle store leaves no task on its loop.
                # PubSub reads keep the connection on cancellation (redis-py 8), and the next
                # reader takes the unsubscribe confirmations still on the way.
                self._reader.cancel()
                self._reader = None
            if self._pubsub is not None:
                try:
                    await self._pubsub.unsubscribe(channel)
                except (RedisError, OSError, AttributeError):
                    # redis-py before 8 drops the connection when a read is cancelled (its
                    # writer is then None: AttributeError). The next subscribe makes a new one.
                    if self._reader is None:
                        pubsub, self._pubsub = self._pubsub, None
                        with contextlib.suppress(Exception):
                            await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _read(self, pubsub: PubSub) -> None:
        failures = 0
        while True:
            try:
                message = await pubsub.get_message(timeout=None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                if failures == 1:
                    logger.warning("result notifications from %s failed (%s); reconnecting",
                                   self.connection.target.safe_url, exc)
                self._wake_all(exc)
                await asyncio.sleep(min(2.0, 0.05 * 2**failures))
                continue
            failures = 0
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind, channel = message["type"], message["channel"]
        if kind == "message":
            self._wake(channel, True)
        elif kind == "subscribe":
            queue = self._confirmations.get(channel)
            if queue:
                confirmed = queue.popleft()
                self._drop_confirmation(channel, confirmed)
                _resolve(confirmed, None)
            else:
                # Not asked for: redis-py re-subscribed after a reconnect, and messages
                # published while the connection was down are lost. Make waiters re-read.
                self._wake(channel, False)
        elif kind == "unsubscribe":
            self._wake(channel, False)  # only matters when someone subscribed again meanwhile

    def _wake(self, channel: bytes, value: bool) -> None:
        for notice in self._waiters.get(channel, ()):
            _resolve(notice, value)

    def _wake_all(self, exc: Exception) -> None:
        for channel in list(self._waiters):
            self._wake(channel, False)
        for queue in self._confirmations.values():
            for confirmed in queue:
                if not confirmed.done():
                    confirmed.set_exception(exc)
        self._confirmations.clear()

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None
        if self._pubsub is not None:
            pubsub, self._pubsub = self._pubsub, None
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]


def _resolve(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)
