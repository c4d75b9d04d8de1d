"""The sharded httpx transports: the check task uses the async one, the benchmark both."""

from __future__ import annotations

import asyncio
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from celeriac.demo.hometax import query_xml
from celeriac.demo.pools import ShardedTransport, SyncShardedTransport
from celeriac.demo.standin import StandIn


def recording(transport: ShardedTransport) -> list[int]:
    chosen: list[int] = []
    for index, shard in enumerate(transport.transports):
        original = shard.handle_async_request

        async def handle(request: httpx.Request, index: int = index, original: Any = original) -> httpx.Response:
            chosen.append(index)
            return await original(request)

        shard.handle_async_request = handle  # type: ignore[method-assign]
    return chosen


async def test_a_trickle_reuses_one_pool_and_a_burst_spreads() -> None:
    with StandIn(delay_s=0.05) as server:
        transport = ShardedTransport(shards=4)
        chosen = recording(transport)
        async with httpx.AsyncClient(transport=transport) as client:

            async def check() -> int:
                body = query_xml("1208801280").encode()
                response = await client.post(server.url, params={"actionId": "ATTABZAA001R08"}, content=body)
                return response.status_code

            assert [await check() for _ in range(3)] == [200] * 3
            assert chosen == [0, 0, 0]
            chosen.clear()
            assert await asyncio.gather(*(check() for _ in range(8))) == [200] * 8
            assert sorted(chosen) == [0, 0, 1, 1, 2, 2, 3, 3]
            assert transport.in_flight == [0, 0, 0, 0]


async def test_a_failed_request_is_not_counted_in_flight() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        transport = ShardedTransport(shards=2)
        async with httpx.AsyncClient(transport=transport) as client:
            with pytest.raises(httpx.ConnectError):
                await client.get(f"http://127.0.0.1:{port}/")
        assert transport.in_flight == [0, 0]


def test_the_sync_transport_spreads_a_burst_over_threads() -> None:
    with StandIn(delay_s=0.05) as server:
        transport = SyncShardedTransport(shards=4)
        with httpx.Client(transport=transport) as client:

            def check(_: int) -> int:
                body = query_xml("1208801280").encode()
                return client.post(server.url, params={"actionId": "ATTABZAA001R08"}, content=body).status_code

            assert check(0) == 200 and transport.shards.in_flight == [0, 0, 0, 0]
            with ThreadPoolExecutor(8) as threads:
                assert list(threads.map(check, range(8))) == [200] * 8
            assert transport.shards.in_flight == [0, 0, 0, 0]
            # each pool kept the connections it opened: the burst used more than one
            assert sum(1 for shard in transport.transports if shard._pool.connections) > 1
