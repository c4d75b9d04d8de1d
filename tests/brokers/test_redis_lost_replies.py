"""Redis: a call whose reply is lost is retried, and a message whose id is not UTF-8.

A lost reply is made deterministically: the reply is read off the socket (so the server
did run the script), then the read raises ``ConnectionError`` as a cut connection would,
and the broker's own retry path (``RedisConnection.run``, then redis-py's ``Retry``)
sends the call again. Runs against the shared server under a fresh key prefix per test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError

from celeriac.exceptions import DuplicateTaskError
from celeriac.message import SUCCESS, Delivery, ResultRecord
from celeriac.servers import BrokerOptions, OutgoingMessage
from celeriac.servers.redis.connection import CALL_MEMORY_MIN_S, call_memory_ms, new_call_id
from celeriac.servers.redis.transport import RedisBroker, stored_ids

LEASE_MS = 60_000


@pytest.fixture
async def broker(redis_url: str) -> AsyncIterator[RedisBroker]:
    b = RedisBroker(redis_url, BrokerOptions(max_deliveries=3, result_expires_s=60))
    await b.connect()
    yield b
    await b.close()


def msg(task_id: str, queue: str = "q") -> OutgoingMessage:
    return OutgoingMessage(task_id, queue, f'{{"id":"{task_id}"}}'.encode())


def rec(task_id: str, token: int, result: str = "first") -> ResultRecord:
    return ResultRecord(task_id=task_id, state=SUCCESS, result=result, fencing_token=token)


class LostReplies:
    """Drops the next ``n`` script replies of one broker's connections after reading them.

    ``before_retry`` runs between the lost reply and the retry (another worker acting).
    """

    def __init__(self, broker: RedisBroker, monkeypatch: pytest.MonkeyPatch) -> None:
        self.client_name = broker.connection.client.connection_pool.connection_kwargs["client_name"]
        self.to_drop = 0
        self.dropped = 0
        self.before_retry: Callable[[], Awaitable[None]] | None = None
        original: Any = AbstractConnection.read_response
        drops = self

        async def lossy(conn: Any, *args: Any, **kwargs: Any) -> Any:
            reply = await original(conn, *args, **kwargs)
            # Scripts reply with arrays or integers; the connection's handshake with "OK".
            if drops.to_drop and conn.client_name == drops.client_name and isinstance(reply, list | int):
                drops.to_drop -= 1
                drops.dropped += 1
                if drops.before_retry is not None:
                    await drops.before_retry()
                raise RedisConnectionError("simulated: the connection dropped before the reply arrived")
            return reply

        monkeypatch.setattr(AbstractConnection, "read_response", lossy)

    def drop(self, n: int = 1) -> None:
        self.to_drop = n


async def stored_result(raw: aioredis.Redis, broker: RedisBroker, task_id: str) -> Any:
    found = await raw.get(broker.keys.result(task_id))
    assert found is not None
    return json.loads(found)["result"]


async def stored(raw: aioredis.Redis, broker: RedisBroker, queue: str = "q") -> tuple[int, int]:
    qk = broker.keys.queue(queue)
    return await raw.hlen(qk.bodies), await raw.zcard(qk.ready)


# --- publish ----------------------------------------------------------------------------


@pytest.mark.parametrize("lost", [1, 3], ids=["direct-call-lost", "redis-py-retries-lost-too"])
async def test_a_publish_retried_after_a_lost_reply_is_stored_once_and_not_refused(
    broker: RedisBroker, raw: aioredis.Redis, monkeypatch: pytest.MonkeyPatch, lost: int
) -> None:
    await broker.publish([msg("warm-up")])  # the queue is registered: the next publish is one script call
    lossy = LostReplies(broker, monkeypatch)
    lossy.drop(lost)
    await broker.publish([msg("x")])  # no DuplicateTaskError for its own first attempt
    assert lossy.dropped == lost  # the server ran it lost + 1 times
    assert await stored(raw, broker) == (2, 2)
    # Another call of delay() with the same id is a real duplicate and still refused.
    with pytest.raises(DuplicateTaskError, match="'x' is already pending"):
        await broker.publish([msg("x")])
    assert await stored(raw, broker) == (2, 2)


async def test_a_publish_whose_message_already_ran_is_not_stored_again_by_the_retry(
    broker: RedisBroker, redis_url: str, raw: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    await broker.publish([msg("warm-up")])
    [warm] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    assert await broker.ack([warm]) == []
    worker = RedisBroker(redis_url)
    await worker.connect()
    lossy = LostReplies(broker, monkeypatch)

    async def run_it_before_the_retry() -> None:  # a fast worker takes and finishes it
        [d] = await worker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w2", timeout_s=0)
        assert d.task_id == "x" and await worker.ack([d]) == []

    lossy.before_retry = run_it_before_the_retry
    try:
        lossy.drop(1)
        await broker.publish([msg("x")])
    finally:
        await worker.close()
    assert lossy.dropped == 1
    assert await stored(raw, broker) == (0, 0)  # not queued again: it does not run twice
    await broker.publish([msg("x")])  # a new call of delay() after it finished runs it again
    assert await stored(raw, broker) == (1, 1)


async def test_the_publish_script_run_twice_with_one_call_key_stores_once(
    broker: RedisBroker, raw: aioredis.Redis
) -> None:
    qk = broker.keys.queue("q")
    keys = [qk.ready, qk.scheduled, qk.bodies, qk.priorities, qk.seq, qk.wake, qk.unique]
    args = ["0", 1, "x", 0, "", b'{"id":"x"}', ""]
    call_key = qk.call(new_call_id())
    first = await broker.connection.run("publish", keys, args, call_key=call_key)
    again = await broker.connection.run("publish", keys, args, call_key=call_key)  # what a retry sends
    assert first == again == [1]
    assert await stored(raw, broker) == (1, 1)
    other_call = await broker.connection.run("publish", keys, args, call_key=qk.call(new_call_id()))
    assert other_call == [-1, b"x"]
    # The reply is kept for the call memory, then forgotten.
    assert broker.connection.call_memory_ms >= CALL_MEMORY_MIN_S * 1000
    assert 0 < await raw.pttl(call_key) <= broker.connection.call_memory_ms
    with pytest.raises(ValueError, match="call_key"):
        await broker.connection.run("publish", keys, args)


def test_the_call_memory_outlasts_the_longest_retry() -> None:
    assert call_memory_ms(5.0, None, 20.0) == CALL_MEMORY_MIN_S * 1000  # the defaults
    # Long timeouts in the URL make a retry come later: the reply is kept longer.
    assert call_memory_ms(30.0, None, 20.0) > 5 * (30 + 30) * 2 * 1000
    assert call_memory_ms(None, None, None) >= CALL_MEMORY_MIN_S * 1000
    assert new_call_id() != new_call_id()


# --- ack, release, retry, dead-letter -----------------------------------------------------


async def reserved(broker: RedisBroker, task_id: str = "x") -> Delivery:
    await broker.publish([msg(task_id)])
    [d] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    return d


@pytest.mark.parametrize("lost", [1, 3], ids=["direct-call-lost", "redis-py-retries-lost-too"])
async def test_an_ack_retried_after_a_lost_reply_is_not_refused(
    broker: RedisBroker, raw: aioredis.Redis, monkeypatch: pytest.MonkeyPatch, lost: int
) -> None:
    d = await reserved(broker)
    lossy = LostReplies(broker, monkeypatch)
    lossy.drop(lost)
    assert await broker.ack([d], [rec("x", d.fencing_token)]) == []
    assert lossy.dropped == lost
    assert await stored(raw, broker) == (0, 0)
    assert await stored_result(raw, broker, "x") == "first"


async def test_an_ack_sent_again_in_a_new_call_is_not_refused_and_writes_nothing(
    broker: RedisBroker, raw: aioredis.Redis
) -> None:
    # A worker that gave up on a call (its retries ran out) and acks again in a new one.
    d = await reserved(broker)
    assert await broker.ack([d], [rec("x", d.fencing_token)]) == []
    assert await broker.ack([d], [rec("x", d.fencing_token, result="second")]) == []
    assert await stored_result(raw, broker, "x") == "first"


async def test_an_ack_of_a_message_taken_over_is_still_refused(broker: RedisBroker, raw: aioredis.Redis) -> None:
    await broker.publish([msg("x")])
    [stale] = await broker.reserve(["q"], 1, lease_ms=1, worker_id="w1", timeout_s=0)
    newer: list[Delivery] = []
    while not newer:  # the 1 ms lease runs out in the server's clock
        newer = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w2", timeout_s=0.05)
    assert newer[0].fencing_token == stale.fencing_token + 1
    assert await broker.ack([stale], [rec("x", stale.fencing_token)]) == ["x"]
    assert await raw.get(broker.keys.result("x")) is None  # fencing: the stale run writes nothing
    assert await broker.ack(newer, [rec("x", newer[0].fencing_token, result="newer")]) == []
    # Once the newer holder acked, the stale ack finds it gone: not refused, and the newer
    # result stays (a lower token never overwrites a higher one).
    assert await broker.ack([stale], [rec("x", stale.fencing_token)]) == []
    assert await stored_result(raw, broker, "x") == "newer"


async def test_release_retry_and_dead_letter_retried_after_a_lost_reply_are_not_refused(
    broker: RedisBroker, raw: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    lossy = LostReplies(broker, monkeypatch)
    qk = broker.keys.queue("q")

    d = await reserved(broker, "released")
    lossy.drop(1)
    assert await broker.release([d]) == []
    assert await raw.zscore(qk.leases, "released") is None and await raw.zscore(qk.ready, "released") is not None
    [d] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    assert d.fencing_token == 2  # released once, not twice

    wake_tokens = await raw.llen(qk.wake)
    lossy.drop(1)
    assert await broker.retry(d, b'{"id":"released","retries":1}', None) is True
    assert await raw.hget(qk.bodies, "released") == b'{"id":"released","retries":1}'
    assert await raw.zcard(qk.ready) == 1 and await raw.llen(qk.wake) == wake_tokens + 1  # run once

    [d] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    lossy.drop(1)
    assert await broker.dead_letter(d, "bad input") is True
    [dead] = await broker.dead_letters()
    assert dead.task_id == "released" and dead.reason == "bad input"
    assert lossy.dropped == 3


# --- a task id that is not UTF-8 ----------------------------------------------------------


async def write_raw_message(raw: aioredis.Redis, broker: RedisBroker, task_id: bytes, queue: str = "q") -> None:
    """What only a raw write makes: a message stored as publish-7.lua stores one, next in line."""
    qk = broker.keys.queue(queue)
    seq = int(await raw.get(qk.seq) or 0) + 1
    await raw.hset(qk.bodies, task_id, b'{"id":"raw"}')
    await raw.hset(qk.priorities, task_id, 0)
    await raw.zadd(qk.ready, {task_id: 9 * 2**49 + 2**48 + seq})  # ready_score(0, seq)
    await raw.set(qk.seq, seq)
    await raw.sadd(broker.keys.queues, queue)


async def test_a_message_whose_id_is_not_utf8_is_dead_lettered_alone(
    broker: RedisBroker, raw: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    bad = b"bad\xff\xfeid"
    await broker.publish([msg(f"before-{i}") for i in range(10)])
    await write_raw_message(raw, broker, bad)
    await broker.publish([msg(f"after-{i}", queue=("q", "other")[i % 2]) for i in range(10)])
    got = await broker.reserve(["q", "other"], 21, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    # Every batch-mate is handed out, with its lease; the poison is not.
    assert sorted(d.task_id for d in got) == sorted([f"before-{i}" for i in range(10)]
                                                    + [f"after-{i}" for i in range(10)])
    assert await broker.ack(got) == []
    qk = broker.keys.queue("q")
    assert await raw.zcard(qk.leases) == 0 and not await raw.hexists(qk.bodies, bad)
    [dead] = await broker.dead_letters()
    assert dead.task_id == "bad\\xff\\xfeid" and dead.queue == "q" and dead.body == b'{"id":"raw"}'
    assert dead.reason.startswith("its task id bad\\xff\\xfeid is not valid UTF-8")
    assert "dead-lettered the message bad\\xff\\xfeid of queue 'q'" in caplog.text
    # A batch of nothing but poison is not returned empty: the reserve looks again at once.
    await broker.requeue_dead_letters([dead.task_id])
    await broker.publish([msg("good")])
    assert [d.task_id for d in await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w",
                                                    timeout_s=0)] == ["good"]
    [dead_again] = await broker.dead_letters()
    assert dead_again.task_id == dead.task_id and dead_again.delivery_count == 2
    assert await broker.purge_dead_letters() == 1 and await broker.dead_letters() == []


def test_an_id_shown_with_escapes_names_the_stored_bytes() -> None:
    assert stored_ids("plain") == [b"plain"]
    assert stored_ids("bad\\xff") == [b"bad\\xff", b"bad\xff"]
    assert stored_ids("bad\udcff") == [b"bad\xff"]  # as a shell argument holding the raw bytes arrives
    # Escapes that would decode as UTF-8 are not what dead_letters() shows for stored bytes.
    assert stored_ids("\\xc3\\xa9") == [b"\\xc3\\xa9"]
    assert stored_ids("\\x41") == [b"\\x41"]


async def test_dlq_list_and_requeue_handle_an_id_that_is_not_utf8(
    broker: RedisBroker, redis_url: str, raw: aioredis.Redis
) -> None:
    await write_raw_message(raw, broker, b"bad\xff")
    assert await broker.reserve(["q"], 5, lease_ms=LEASE_MS, worker_id="w", timeout_s=0) == []

    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "celeriac", "-b", redis_url, "dlq", *args],
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    [listed] = json.loads(cli("list", "--json"))
    assert listed["task_id"] == "bad\\xff" and "not valid UTF-8" in listed["reason"]
    assert "bad\\xff" in cli("list")
    cli("requeue", "bad\\xff")  # the id as listed addresses the stored bytes
    qk = broker.keys.queue("q")
    assert await raw.hexists(qk.bodies, b"bad\xff") and await raw.zscore(qk.ready, b"bad\xff") is not None
    assert await broker.dead_letters() == []
