"""The broker every contract suite runs against: each server in turn, against the real server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from celeriac.servers import Broker, BrokerOptions, create_broker


@pytest.fixture
async def broker(backend_url: str) -> AsyncIterator[Broker]:
    b = create_broker(backend_url, BrokerOptions(max_deliveries=3))
    await b.connect()
    yield b
    await b.close()
