"""The sharded httpx transport the check task uses."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx
import pytest

from celeriac.demo.hometax import query_xml
from celeriac.demo.pools import ShardedTransport
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
