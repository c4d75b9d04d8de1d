"""streaQ's worker app: ``streaq run bench.peers.streaq_app:worker``.

streaQ's defaults: one process, ``concurrency=16``, pickle serialisation, Redis
streams. Results are off per task (``ttl=0``: the default keeps them 5 minutes). The
I/O run sets ``concurrency=1000`` through ``BENCH_CONCURRENCY``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from streaq import Worker

from . import common
from .base import AsyncPeerClient

_concurrency = common.concurrency_override()
worker: Worker[Any] = (Worker(redis_url=common.REDIS_URL, concurrency=_concurrency) if _concurrency
                       else Worker(redis_url=common.REDIS_URL))


@worker.task(name="noop", ttl=0)
async def noop(i: int) -> None:
    await common.noop_async(i)


@worker.task(name="io", ttl=0)
async def io(i: int) -> None:
    await common.io_async(i)


@worker.task(name="stamp", ttl=0)
async def stamp(i: int) -> None:
    await common.stamp_async(i)


@worker.task(name="cpu", ttl=0)
async def cpu(i: int) -> None:
    await common.cpu_async(i)


TASKS: dict[str, Any] = {"noop": noop, "io": io, "stamp": stamp, "cpu": cpu}


class Client(AsyncPeerClient):
    batch_api = "worker.enqueue_many([task.enqueue(i) for i in range(n)])"

    def __init__(self, variant: str) -> None:
        super().__init__()
        # `async with worker:` connects; coredis insists that the block is entered and
        # left in one task, so a task of its own holds it open between measurements.
        self._stop = asyncio.Event()
        connected = asyncio.Event()

        async def hold() -> None:
            async with worker:
                connected.set()
                await self._stop.wait()

        self._holder = self.loop.create_task(hold())
        self.run(connected.wait())

    def enqueue_each(self, kind: str, n: int) -> None:
        task = TASKS[kind]

        async def each() -> None:
            for i in range(n):
                await task.enqueue(i)  # awaiting the Task publishes it

        self.run(each())

    def enqueue_batch(self, kind: str, n: int) -> None:
        task = TASKS[kind]
        self.run(worker.enqueue_many([task.enqueue(i) for i in range(n)]))

    def fill(self, kind: str, n: int) -> None:
        for start in range(0, n, 5000):
            task = TASKS[kind]
            self.run(worker.enqueue_many([task.enqueue(i) for i in range(start, min(start + 5000, n))]))

    def send(self, kind: str, i: int) -> None:
        self.run(self._send(kind, i))

    async def _send(self, kind: str, i: int) -> None:
        await TASKS[kind].enqueue(i)

    def close(self) -> None:
        self._stop.set()
        self.run(self._holder)
        super().close()


def make_client(variant: str) -> Client:
    return Client(variant)
