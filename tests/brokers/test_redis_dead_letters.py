"""Redis only: how dead letters are stored (one entry each), and entries of earlier builds."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from celeriac.servers import BrokerOptions, OutgoingMessage
from celeriac.servers.contracts import SKIPPED_PENDING, RequeueOutcome
from celeriac.servers.redis.transport import RedisBroker

LEASE_MS = 60_000


@pytest.fixture
async def broker(redis_url: str) -> AsyncIterator[RedisBroker]:
    b = RedisBroker(redis_url, BrokerOptions(max_deliveries=3))
    await b.connect()
    yield b
    await b.close()


async def dead_letter_one(broker: RedisBroker, task_id: str, body: bytes, reason: str, queue: str = "q") -> None:
    await broker.publish([OutgoingMessage(task_id, queue, body)])
    [d] = await broker.reserve([queue], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    assert await broker.dead_letter(d, reason)


async def test_each_dead_letter_is_an_entry_of_its_own(broker: RedisBroker, raw: aioredis.Redis) -> None:
    task_id = "odd\0id\x002"  # holds the separator itself: the last one counts
    await dead_letter_one(broker, task_id, b"one", "first")
    await dead_letter_one(broker, task_id, b"two", "second")
    qk = broker.keys.queue("q")
    assert sorted(await raw.hkeys(qk.dead_letters)) == [task_id.encode() + b"\x001", task_id.encode() + b"\x002"]
    assert [(d.task_id, d.body) for d in await broker.dead_letters()] == [(task_id, b"one"), (task_id, b"two")]
    assert await broker.requeue_dead_letters([task_id]) == RequeueOutcome([task_id], {})
    [d] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    assert d.task_id == task_id and d.body == b"two"
    assert await broker.dead_letter(d, "third")  # takes the number the requeued one left free
    assert sorted(await raw.hkeys(qk.dead_letters)) == [task_id.encode() + b"\x001", task_id.encode() + b"\x002"]
    assert [d.reason for d in await broker.dead_letters()] == ["first", "third"]


async def test_a_dead_letter_written_by_an_earlier_build_is_listed_and_requeued(
    broker: RedisBroker, raw: aioredis.Redis
) -> None:
    await broker.publish([OutgoingMessage("warm-up", "q", b"{}")])  # registers the queue
    assert await broker.ack(await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)) == []
    qk = broker.keys.queue("q")
    # The earlier layout: one entry per task id, named by the id alone, scored in ms.
    failed_at_ms = int(time.time() * 1000) - 1000
    await raw.zadd(qk.dead, {"legacy": failed_at_ms})
    await raw.hset(qk.dead_letters, "legacy", "4:2:10:old reasonold body")
    [old] = await broker.dead_letters()
    assert (old.task_id, old.body, old.reason, old.priority, old.delivery_count, old.failed_at_ms) == (
        "legacy", b"old body", "old reason", 4, 2, failed_at_ms)
    await dead_letter_one(broker, "legacy", b"new body", "new reason")
    old, new = await broker.dead_letters()
    assert (old.reason, new.reason) == ("old reason", "new reason")
    assert abs(new.failed_at_ms - time.time() * 1000) < 60_000  # in ms, as the earlier one
    assert await broker.requeue_dead_letters(None) == RequeueOutcome(["legacy"], {})
    [d] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    assert d.body == b"new body"
    assert await broker.requeue_dead_letters(["legacy"]) == RequeueOutcome([], {"legacy": SKIPPED_PENDING})
    assert await broker.ack([d]) == []
    assert await broker.requeue_dead_letters(["legacy"]) == RequeueOutcome(["legacy"], {})
    [d] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    assert (d.body, d.fencing_token) == (b"old body", 3)
    assert await raw.exists(qk.dead, qk.dead_letters) == 0


async def test_requeue_takes_the_newest_dead_letter_across_queues(broker: RedisBroker) -> None:
    await dead_letter_one(broker, "x", b"in a", "failed in a", queue="a")
    await dead_letter_one(broker, "x", b"in b", "failed in b", queue="b")
    assert await broker.requeue_dead_letters(["x"]) == RequeueOutcome(["x"], {})
    assert await broker.reserve(["a"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0) == []
    [d] = await broker.reserve(["b"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    assert d.body == b"in b"
    assert [(d.queue, d.reason) for d in await broker.dead_letters()] == [("a", "failed in a")]
    assert await broker.purge_dead_letters() == 1
