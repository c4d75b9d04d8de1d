"""arq's worker app: ``arq bench.peers.arq_app.WorkerSettings``.

arq's defaults: ``max_jobs=10``, a 0.5 s queue poll, results kept for an hour unless a
function says otherwise; here each function says ``keep_result=0`` (results off). The
I/O run sets ``max_jobs=1000`` through ``BENCH_CONCURRENCY`` (arq's CLI has no flag).

arq pins redis-py below 6, which no other queue here can share, so the harness installs
it into its own directory and puts that first on ``PYTHONPATH`` for arq's processes.
"""

from __future__ import annotations

from typing import Any, ClassVar

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.worker import func

from . import common
from .base import AsyncPeerClient


async def noop(ctx: dict[str, Any], i: int) -> None:
    await common.noop_async(i)


async def io(ctx: dict[str, Any], i: int) -> None:
    await common.io_async(i)


async def stamp(ctx: dict[str, Any], i: int) -> None:
    await common.stamp_async(i)


async def cpu(ctx: dict[str, Any], i: int) -> None:
    await common.cpu_async(i)


class WorkerSettings:
    functions: ClassVar[list[Any]] = [
        func(noop, name="noop", keep_result=0),
        func(io, name="io", keep_result=0),
        func(stamp, name="stamp", keep_result=0),
        func(cpu, name="cpu", keep_result=0),
    ]
    redis_settings = RedisSettings.from_dsn(common.REDIS_URL)
    if common.concurrency_override():
        max_jobs = common.concurrency_override()


class Client(AsyncPeerClient):
    batch_api = None  # arq enqueues one job per call

    def __init__(self, variant: str) -> None:
        super().__init__()
        self.pool: ArqRedis = self.run(create_pool(RedisSettings.from_dsn(common.REDIS_URL)))

    def enqueue_each(self, kind: str, n: int) -> None:
        async def each() -> None:
            for i in range(n):
                await self.pool.enqueue_job(kind, i)

        self.run(each())

    def enqueue_batch(self, kind: str, n: int) -> None:
        raise NotImplementedError("arq has no batch enqueue")

    def fill(self, kind: str, n: int) -> None:
        self.enqueue_each(kind, n)  # measured faster than concurrent sends here

    def send(self, kind: str, i: int) -> None:
        self.run(self.pool.enqueue_job(kind, i))

    def close(self) -> None:
        self.run(self.pool.aclose())
        super().close()


def make_client(variant: str) -> Client:
    return Client(variant)
