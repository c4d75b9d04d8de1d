"""The control-store contract: revoked ids, rate-limit tokens and the event log."""

from __future__ import annotations

from celeriac.servers import Broker, BrokerOptions, create_broker


async def test_revoked_ids(broker: Broker) -> None:
    await broker.revoke(["a", "b"])
    await broker.revoke(["c"], terminate=True)
    assert await broker.revoked_among(["a", "c", "z"]) == {"a": False, "c": True}
    assert await broker.revoked_among([]) == {}


async def test_event_log_is_capped_and_read_in_order(backend_url: str) -> None:
    b = create_broker(backend_url, BrokerOptions(events_max=5))
    await b.connect()
    try:
        await b.emit_events([f"e{i}".encode() for i in range(8)])
        newest = await b.read_events(None, 100)
        assert [raw for _, raw in newest][-5:] == [f"e{i}".encode() for i in range(3, 8)]
        assert len(newest) <= 6  # capping may be approximate, never unbounded
        first_id = newest[-3][0]
        assert [raw for _, raw in await b.read_events(first_id, 100)] == [b"e6", b"e7"]
        await b.emit_events([b"e8"])
        assert [raw for _, raw in await b.read_events(newest[-1][0], 100)] == [b"e8"]
    finally:
        await b.close()


async def test_rate_tokens_are_shared_through_the_server(backend_url: str) -> None:
    first, second = create_broker(backend_url, BrokerOptions()), create_broker(backend_url, BrokerOptions())
    await first.connect()
    await second.connect()
    try:
        assert await first.take_rate_token("task:t", 1.0, 2.0) == 0.0
        assert await second.take_rate_token("task:t", 1.0, 2.0) == 0.0
        assert await first.take_rate_token("task:t", 1.0, 2.0) > 0.0  # the bucket of two is empty
        assert await second.take_rate_token("task:other", 1.0, 2.0) == 0.0
    finally:
        await first.close()
        await second.close()


async def test_rate_bucket_refills_in_the_servers_clock(broker: Broker) -> None:
    assert await broker.take_rate_token("task:slow", 1.0, 2.0) == 0.0
    assert await broker.take_rate_token("task:slow", 1.0, 2.0) == 0.0
    assert 0.0 < await broker.take_rate_token("task:slow", 1.0, 2.0) <= 1.0
    await broker.skew_clock(1_500)
    assert await broker.take_rate_token("task:slow", 1.0, 2.0) == 0.0
