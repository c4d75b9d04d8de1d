"""Fixtures the server-specific tests share: a Redis URL with a fresh key prefix, and a raw client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from ..conftest import redis_test_url


@pytest.fixture
def redis_url() -> Iterator[str]:
    with redis_test_url("test") as url:
        yield url


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A plain client on the same database, for looking at and writing keys directly."""
    from celeriac.servers.redis.connection import parse_url

    client = aioredis.Redis.from_url(parse_url(redis_url).redis_url)
    yield client
    await client.aclose()
