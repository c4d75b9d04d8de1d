"""Redis-specific behaviour: key layout, server checks, blocking, shared calls, pub/sub.

Runs against the shared server at REDIS_URL under a fresh key prefix per test; it never
writes the server's configuration nor flushes anything.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import fields
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot
from redis.exceptions import NoScriptError, ResponseError

from celeriac.exceptions import BrokerUnavailable, ConfigurationError
from celeriac.message import READY_STATES, STARTED, SUCCESS, ResultRecord
from celeriac.servers import BrokerOptions, OutgoingMessage, create_broker, open_clients, open_server
from celeriac.servers.redis.keys import Keys, QueueKeys
from celeriac.servers.redis.results import RedisResultStore
from celeriac.servers.redis.transport import RedisBroker, parse_url

LEASE_MS = 60_000


@pytest.fixture
async def broker(redis_url: str) -> AsyncIterator[RedisBroker]:
    b = RedisBroker(redis_url, BrokerOptions(max_deliveries=3))
    await b.connect()
    yield b
    await b.close()


def msg(task_id: str, queue: str = "q", priority: int = 0, eta_ms: int | None = None) -> OutgoingMessage:
    return OutgoingMessage(task_id, queue, f'{{"id":"{task_id}"}}'.encode(), priority, eta_ms)


def rec(task_id: str, state: str = SUCCESS, token: int = 1) -> ResultRecord:
    return ResultRecord(task_id=task_id, state=state, result=task_id, fencing_token=token)


# --- key layout and URL ---------------------------------------------------------------


def test_every_key_of_a_queue_shares_one_hash_tag() -> None:
    queue_keys = Keys("app").queue("emails")
    names = [getattr(queue_keys, f.name) for f in fields(QueueKeys)]
    assert all(name.startswith("{app:emails}:") for name in names)
    assert len(set(names)) == len(names)
    assert len({key_slot(name.encode()) for name in names}) == 1
    # Another queue gets its own tag, so queues can spread over a cluster's slots.
    assert Keys("app").queue("sms").ready.startswith("{app:sms}:")


async def test_keys_written_carry_the_prefix_and_queue_tag(broker: RedisBroker, raw: aioredis.Redis) -> None:
    prefix = broker.keys.prefix
    await broker.publish([msg("a"), msg("b", eta_ms=int(time.time() * 1000) + 60_000)])
    [d] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    await broker.dead_letter(d, "bad")
    await broker.revoke(["a"])
    queue_keys = [k.decode() async for k in raw.scan_iter(match=f"{{{prefix}:q}}*")]
    assert queue_keys and {key_slot(k.encode()) for k in queue_keys} == {key_slot(f"{{{prefix}:q}}".encode())}
    every_key = [k.decode() async for k in raw.scan_iter(match=f"*{prefix}*")]
    assert all(k.startswith((f"{{{prefix}:", f"{{{prefix}}}:", f"{prefix}:")) for k in every_key)


def test_celeriac_options_are_removed_and_the_password_hidden() -> None:
    target = parse_url("redis://:s3cret@redis.example:6380/3?key_prefix=app&allow_evicting_policy=true"
                       "&socket_timeout=2")
    assert target.key_prefix == "app" and target.allow_evicting_policy
    assert target.redis_url == "redis://:s3cret@redis.example:6380/3?socket_timeout=2"
    assert "s3cret" not in target.safe_url and "redis.example:6380/3" in target.safe_url
    assert parse_url("rediss://localhost/0").key_prefix == "celeriac"
    with pytest.raises(ConfigurationError, match="allow_evicting_policy"):
        parse_url("redis://localhost/0?allow_evicting_policy=maybe")


def test_sentinel_url_names_the_sentinels_and_master() -> None:
    from celeriac.servers.redis.connection import RedisConnection

    connection = RedisConnection("redis+sentinel://:pw@s1:26379,s2:26380/2?master_name=main&key_prefix=p")
    client = connection._make_client()
    pool: Any = client.connection_pool
    assert pool.service_name == "main"
    hosts = [(s.connection_pool.connection_kwargs["host"], s.connection_pool.connection_kwargs["port"])
             for s in pool.sentinel_manager.sentinels]
    assert hosts == [("s1", 26379), ("s2", 26380)]
    assert pool.connection_kwargs["db"] == 2 and pool.connection_kwargs["password"] == "pw"


# --- checks at connect() --------------------------------------------------------------


async def test_unreachable_server_says_how_to_fix_it_without_the_password() -> None:
    broker = create_broker("redis://:hunter2@127.0.0.1:1/0", BrokerOptions())
    with pytest.raises(BrokerUnavailable) as caught:
        await broker.connect()
    message = str(caught.value)
    assert "127.0.0.1:1" in message and "is redis-server running?" in message and "broker_url" in message
    assert "hunter2" not in message


def _pretend_policy(monkeypatch: pytest.MonkeyPatch, policy: str) -> None:
    async def config_get(self: aioredis.Redis, pattern: str = "*", *args: Any, **kwargs: Any) -> dict[str, str]:
        return {"maxmemory-policy": policy}

    monkeypatch.setattr(aioredis.Redis, "config_get", config_get)


async def test_reads_the_servers_real_policy(redis_url: str, raw: aioredis.Redis) -> None:
    try:
        real = (await raw.config_get("maxmemory-policy"))["maxmemory-policy"]
    except ResponseError:
        pytest.skip("CONFIG is disabled on this server")
    broker = RedisBroker(redis_url)
    if str(real).startswith("allkeys-"):
        with pytest.raises(ConfigurationError):
            await broker.connect()
    else:
        await broker.connect()
        await broker.close()


async def test_evicting_policy_is_refused(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _pretend_policy(monkeypatch, "allkeys-lru")
    with pytest.raises(ConfigurationError) as caught:
        await RedisBroker(redis_url).connect()
    message = str(caught.value)
    assert "allkeys-lru" in message and "lose queued tasks" in message
    assert "CONFIG SET maxmemory-policy noeviction" in message and "allow_evicting_policy=true" in message


async def test_evicting_policy_allowed_by_the_url(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _pretend_policy(monkeypatch, "allkeys-random")
    broker = RedisBroker(redis_url + "&allow_evicting_policy=true")
    with caplog.at_level(logging.WARNING, logger="celeriac.redis"):
        await broker.connect()
    await broker.close()
    assert "allkeys-random" in caplog.text


async def test_volatile_policy_only_warns(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _pretend_policy(monkeypatch, "volatile-lru")
    broker = RedisBroker(redis_url)
    with caplog.at_level(logging.WARNING, logger="celeriac.redis"):
        await broker.connect()
    await broker.close()
    assert "volatile-lru" in caplog.text


async def test_disabled_config_command_is_logged_and_ignored(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def config_get(self: aioredis.Redis, *args: Any, **kwargs: Any) -> dict[str, str]:
        raise ResponseError("unknown command 'CONFIG'")

    monkeypatch.setattr(aioredis.Redis, "config_get", config_get)
    broker = RedisBroker(redis_url)
    with caplog.at_level(logging.INFO, logger="celeriac.redis"):
        await broker.connect()
    await broker.close()
    assert "cannot read maxmemory-policy" in caplog.text


# --- blocking and batching ------------------------------------------------------------


def _count_commands(client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Commands this client's connections send, whether through redis-py's command layer
    or the broker's direct script calls (which pack their own)."""
    from redis.asyncio.connection import AbstractConnection

    sent: list[str] = []
    name = client.connection_pool.connection_kwargs.get("client_name")
    original: Any = AbstractConnection.send_packed_command
    handshake = {"HELLO", "CLIENT", "SELECT", "AUTH", "READONLY"}  # a new connection's set-up

    async def counting(self: Any, command: Any, *args: Any, **kwargs: Any) -> Any:
        packed = command if isinstance(command, bytes) else b"".join(command)
        # RESP: "*<n>\r\n$<len>\r\n<first word>\r\n...": several commands when pipelined
        for chunk in packed.split(b"*")[1:]:
            lines = chunk.split(b"\r\n")
            if len(lines) > 2 and lines[0].isdigit() and lines[1].startswith(b"$"):
                word = lines[2].decode(errors="replace").upper()
                if self.client_name == name and word not in handshake:
                    sent.append(word)
        return await original(self, command, *args, **kwargs)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    return sent


async def test_idle_reserve_blocks_in_one_command(broker: RedisBroker, raw: aioredis.Redis,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    sent = _count_commands(broker.connection.client, monkeypatch)
    waiting = asyncio.create_task(broker.reserve(["q"], 10, lease_ms=LEASE_MS, worker_id="w", timeout_s=1.0))
    await asyncio.sleep(0.5)
    name = f"celeriac-{broker.keys.prefix}"
    blocked = [c for c in await raw.client_list() if c.get("name") == name and c.get("cmd") == "blpop"]
    assert len(blocked) == 1 and "b" in blocked[0]["flags"]
    # one look, then one blocking wait with the next look queued behind it in one write:
    # Redis runs that look when the wait ends, so waking costs no extra round trip
    assert sent == ["EVALSHA", "BLPOP", "EVALSHA"]
    assert await waiting == []
    assert sent == ["EVALSHA", "BLPOP", "EVALSHA"]  # nothing more was sent


async def test_blocking_wait_is_cut_short_by_the_next_due_eta(broker: RedisBroker,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    sent = _count_commands(broker.connection.client, monkeypatch)
    await broker.publish([msg("soon", eta_ms=int(time.time() * 1000) + 300)])
    got = await broker.reserve(["q"], 10, lease_ms=LEASE_MS, worker_id="w", timeout_s=3.0)
    assert [d.task_id for d in got] == ["soon"]
    assert sent.count("BLPOP") == 1


async def test_a_woken_reserve_takes_its_message_in_the_same_round_trip(
        broker: RedisBroker, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    sent = _count_commands(broker.connection.client, monkeypatch)
    waiting = asyncio.create_task(broker.reserve(["q"], 10, lease_ms=LEASE_MS, worker_id="w", timeout_s=3.0))
    await asyncio.sleep(0.2)
    assert sent == ["EVALSHA", "BLPOP", "EVALSHA"]
    producer = RedisBroker(redis_url)  # another client, with the same name: counted too
    await producer.connect()
    try:
        await producer.publish([msg("wake-me")])
    finally:
        await producer.close()
    sent_before_waking = len(sent)
    got = await waiting
    assert [d.task_id for d in got] == ["wake-me"]
    assert len(sent) == sent_before_waking  # the reserve queued behind the BLPOP took it


async def test_reserve_ack_and_renew_are_one_command_per_batch(broker: RedisBroker,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    await broker.publish([msg(f"m{i}") for i in range(100)])
    sent = _count_commands(broker.connection.client, monkeypatch)
    got = await broker.reserve(["q"], 100, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    assert len(got) == 100
    assert await broker.renew(got, LEASE_MS) == []
    assert await broker.ack(got) == []
    assert sent == ["EVALSHA", "EVALSHA", "EVALSHA"]


async def test_priorities_then_fifo_over_several_queues(broker: RedisBroker) -> None:
    published = []
    for batch in range(4):
        messages = [msg(f"{batch}-{i}", queue=("a", "b")[i % 2], priority=(i * 7) % 10) for i in range(25)]
        await broker.publish(messages)
        published += messages
    expected = [m.task_id for m in sorted(published, key=lambda m: -m.priority)]  # stable: keeps age order
    taken: list[str] = []
    while len(taken) < len(published):
        got = await broker.reserve(["a", "b"], 7, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
        taken += [d.task_id for d in got]
    assert taken == expected


async def test_a_lost_script_cache_is_reloaded(broker: RedisBroker, monkeypatch: pytest.MonkeyPatch) -> None:
    client = broker.connection.client
    original = client.evalsha
    failures = [NoScriptError("NOSCRIPT No matching script")]

    async def forgetful_evalsha(*args: Any) -> Any:
        if failures:
            raise failures.pop()
        return await original(*args)

    monkeypatch.setattr(client, "evalsha", forgetful_evalsha)
    await broker.publish([msg("x")])
    assert [d.task_id for d in await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)] == ["x"]


# --- results --------------------------------------------------------------------------


def test_result_record_field_order_matches_result_lua() -> None:
    # result.lua reads the token from the JSON's tail and the state right after task_id.
    names = ResultRecord.__struct_fields__
    assert names[:2] == ("task_id", "state") and names[-1] == "fencing_token"
    assert frozenset({"SUCCESS", "FAILURE", "REVOKED"}) == READY_STATES


async def test_ack_writes_results_in_the_same_call_but_not_for_refused_acks(
    redis_url: str, raw: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = open_server(redis_url)
    broker, store = server.transport(BrokerOptions(result_expires_s=60)), server.results(60)
    await broker.connect()
    await store.connect()
    try:
        assert isinstance(store, RedisResultStore) and server.acks_carry_results
        assert isinstance(broker, RedisBroker) and store.connection is broker.connection
        await broker.publish([msg("x")])
        [first] = await broker.reserve(["q"], 1, lease_ms=50, worker_id="w1", timeout_s=0)
        await asyncio.sleep(0.1)
        [second] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w2", timeout_s=1.0)
        assert isinstance(broker, RedisBroker)
        sent = _count_commands(broker.connection.client, monkeypatch)
        assert await broker.ack([first], [rec("x", token=first.fencing_token)]) == ["x"]
        assert await broker.ack([second], [rec("x", token=second.fencing_token)]) == []
        assert sent == ["EVALSHA", "EVALSHA"]  # each ack and its results: one call
        got = await store.fetch("x")
        assert got is not None and got.fencing_token == 2
        assert sent[-1] == "GET"  # the store reads through the broker's own client
        # A refused ack writes nothing: its result would overwrite the new holder's.
        await broker.publish([msg("y")])
        [stale] = await broker.reserve(["q"], 1, lease_ms=50, worker_id="w1", timeout_s=0)
        await asyncio.sleep(0.1)
        [fresh] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w2", timeout_s=1.0)
        assert await broker.ack([stale], [rec("y", token=stale.fencing_token)]) == ["y"]
        assert await store.fetch("y") is None
        assert await broker.ack([fresh]) == []
        assert 0 < await raw.pttl(broker.keys.result("x")) <= 60_000
    finally:
        await store.close()
        await broker.close()


async def test_a_store_on_another_prefix_is_not_written_by_acks(redis_url: str) -> None:
    other_url = redis_url.replace("key_prefix=", "key_prefix=other-")
    server = open_server(redis_url)
    assert not server.holds(other_url)
    assert server.holds(redis_url)
    clients = open_clients(redis_url, other_url, BrokerOptions(), 60)
    assert not clients.acks_carry_results and clients.store is not None
    assert clients.store.connection is not clients.broker.connection  # type: ignore[attr-defined]
    assert open_clients(redis_url, redis_url, BrokerOptions(), 60).acks_carry_results


async def test_records_expire(redis_url: str, raw: aioredis.Redis) -> None:
    store = RedisResultStore(redis_url, expires_s=30)
    await store.connect()
    try:
        await store.store([rec("r")])
        await store.record_group_member("g", "m", 2, rec("m"))
        await store.save_group("g", ["m", "n"])
        for key in (store.keys.result("r"), store.keys.group_done("g"), store.keys.group("g")):
            assert 0 < await raw.pttl(key) <= 30_000
    finally:
        await store.close()


async def test_waiters_share_one_pubsub_connection(redis_url: str, raw: aioredis.Redis) -> None:
    store = RedisResultStore(redis_url)
    await store.connect()
    try:
        await store.store([rec(f"t{i}", state=STARTED) for i in range(20)])
        waiting = [asyncio.create_task(store.wait_ready(f"t{i}", 5.0)) for i in range(20)]
        await asyncio.sleep(0.3)
        name = f"celeriac-{store.keys.prefix}"
        subscribers = [c for c in await raw.client_list() if c.get("name") == name and int(c.get("sub", 0)) > 0]
        assert len(subscribers) == 1 and int(subscribers[0]["sub"]) == 20
        await store.store([rec(f"t{i}") for i in range(20)])
        done = await asyncio.gather(*waiting)
        assert [r.state if r else None for r in done] == [SUCCESS] * 20
        # Two waiters on one id, and a waiter that arrives after the write.
        both = [asyncio.create_task(store.wait_ready("same", 5.0)) for _ in range(2)]
        await asyncio.sleep(0.1)
        await store.store([rec("same")])
        assert all(r is not None and r.state == SUCCESS for r in await asyncio.gather(*both))
        late = await store.wait_ready("same", 0.5)
        assert late is not None and late.state == SUCCESS
    finally:
        await store.close()


async def test_a_wait_that_times_out_returns_even_when_the_pubsub_connection_was_dropped(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """redis-py before 8 drops a PubSub's connection when its read is cancelled, so the
    unsubscribe after a timed-out wait met a connection without a writer (AttributeError
    from get(timeout=...) instead of celeriac's TimeoutError). The wait returns, and the
    next wait subscribes on a fresh connection."""
    store = RedisResultStore(redis_url)
    await store.connect()
    try:
        await store.store([rec("slow", state=STARTED)])
        assert (await store.wait_ready("slow", 0.2)).state == STARTED  # type: ignore[union-attr]
        notices = store._notices
        assert notices is not None and notices._pubsub is not None
        dropped = notices._pubsub

        async def writer_gone(*channels: Any) -> None:
            raise AttributeError("'NoneType' object has no attribute 'writelines'")

        monkeypatch.setattr(dropped, "unsubscribe", writer_gone)
        record = await store.wait_ready("slow", 0.2)  # timed out: the unsubscribe fails as above
        assert record is not None and record.state == STARTED
        assert notices._pubsub is not dropped  # the dropped connection is let go
        waiting = asyncio.create_task(store.wait_ready("slow", 5.0))
        await asyncio.sleep(0.2)
        await store.store([rec("slow")])
        done = await waiting  # woken through a new subscription
        assert done is not None and done.state == SUCCESS
    finally:
        await store.close()


async def test_a_task_whose_leases_keep_running_out_fails_visibly(redis_url: str, raw: aioredis.Redis) -> None:
    broker = RedisBroker(redis_url, BrokerOptions(max_deliveries=2, result_expires_s=60))
    store = RedisResultStore(redis_url, 60, broker.connection)
    await broker.connect()
    await store.connect()
    try:
        await broker.publish([msg("crash\"er/é")])
        waiting = asyncio.create_task(store.wait_ready("crash\"er/é", 5.0))
        for _ in range(2):
            assert len(await broker.reserve(["q"], 1, lease_ms=50, worker_id="w", timeout_s=1.0)) == 1
            await asyncio.sleep(0.1)
        assert await broker.reserve(["q"], 1, lease_ms=50, worker_id="w", timeout_s=0) == []
        record = await waiting  # woken by the script's PUBLISH
        assert record is not None and record.state == "FAILURE" and record.fencing_token == 2
        assert record.exc_type == "celeriac.exceptions.WorkerLostError" and "2 times" in (record.exc_message or "")
        assert 0 < await raw.pttl(broker.keys.result("crash\"er/é")) <= 60_000
        # Requeued, it goes on counting deliveries, so its next result outranks the FAILURE.
        assert (await broker.requeue_dead_letters()).requeued == ["crash\"er/é"]
        [again] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
        assert again.fencing_token == 3
        assert await broker.ack([again], [rec("crash\"er/é", token=again.fencing_token)]) == []
        done = await store.fetch("crash\"er/é")
        assert done is not None and done.state == SUCCESS
    finally:
        await store.close()
        await broker.close()


async def test_rate_token_bucket_is_shared_and_refills(redis_url: str) -> None:
    first, second = RedisBroker(redis_url), RedisBroker(redis_url)
    await first.connect()
    await second.connect()
    try:
        assert await first.take_rate_token("task:t", 10.0, 2.0) == 0.0
        assert await second.take_rate_token("task:t", 10.0, 2.0) == 0.0
        wait_s = await first.take_rate_token("task:t", 10.0, 2.0)
        assert 0.0 < wait_s <= 0.1
        await asyncio.sleep(wait_s + 0.02)
        assert await second.take_rate_token("task:t", 10.0, 2.0) == 0.0
    finally:
        await first.close()
        await second.close()


async def test_a_burst_of_calls_waits_for_a_free_connection(redis_url: str) -> None:
    broker = RedisBroker(redis_url + "&max_connections=5")
    await broker.connect()
    try:
        await asyncio.gather(*(broker.publish([msg(f"b{i}")]) for i in range(300)))
        assert await broker.queue_depths() == {"q": 300}
    finally:
        await broker.close()
