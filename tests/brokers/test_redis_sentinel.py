"""``redis+sentinel://`` against a real Sentinel: the master is found through it.

The test starts its own master and its own Sentinel (``redis-server --sentinel``) on
free ports, and stops both; the shared server is not involved.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac import Celery
from celeriac.message import SUCCESS, ResultRecord
from celeriac.servers import BrokerOptions, OutgoingMessage, open_server

from ..conftest import IN_CI
from ..own_redis import OwnRedis

MASTER_NAME = "celeriac-test"


@pytest.fixture
def sentinel_url(tmp_path: Path) -> Iterator[str]:
    if shutil.which("redis-server") is None:
        if IN_CI:
            pytest.fail("redis-server is missing")
        pytest.skip("needs redis-server")
    master = OwnRedis(tmp_path)
    master.start()
    sentinel = OwnRedis(tmp_path, "--sentinel", config=(
        f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master.port} 1\n"
        f"sentinel down-after-milliseconds {MASTER_NAME} 60000\n"
    ))
    try:
        sentinel.start()
        yield f"redis+sentinel://127.0.0.1:{sentinel.port}/0?master_name={MASTER_NAME}&key_prefix=sentinel-test"
    finally:
        sentinel.stop()
        master.stop()


async def test_broker_and_store_reach_the_master_through_sentinel(sentinel_url: str) -> None:
    server = open_server(sentinel_url)
    broker, store = server.transport(BrokerOptions()), server.results(60.0)
    await broker.connect()
    await store.connect()
    try:
        await broker.publish([OutgoingMessage("t1", "q", b'{"id":"t1"}', 0, None)])
        [delivery] = await broker.reserve(["q"], 10, lease_ms=30_000, worker_id="w", timeout_s=1.0)
        assert delivery.task_id == "t1"
        record = ResultRecord(task_id="t1", state=SUCCESS, result=42, fencing_token=delivery.fencing_token,
                              date_done_ms=int(time.time() * 1000))
        await broker.ack([delivery])
        await store.store([record])
        stored = await store.fetch("t1")
        assert stored is not None and stored.state == SUCCESS and stored.result == 42
        assert await broker.reserve(["q"], 10, lease_ms=30_000, worker_id="w", timeout_s=0.1) == []
    finally:
        await store.close()
        await broker.close()


def test_delay_through_sentinel(sentinel_url: str) -> None:
    app = Celery("sentinel-test", broker=sentinel_url)

    @app.task(name="sentinel.add")
    def add(a: int, b: int) -> int:
        return a + b

    result = add.delay(2, 3)
    assert result.state == "PENDING"  # queued on the master the Sentinel named
