"""PgQueuer's worker app: ``pgq run bench.peers.pgqueuer_app:main``.

PgQueuer's defaults: one process, its asyncpg driver, ``--batch-size 10`` jobs per
dequeue, no global concurrency cap, ``LISTEN/NOTIFY`` wake-ups with a 30 s dequeue
timeout, finished jobs moved to its log table. Its objects are in the schema
``bench_pgqueuer`` (``PGQUEUER_SCHEMA``, set here before PgQueuer reads its settings),
installed by ``setup()`` on first use. Each job's payload is the task's argument.

PgQueuer and asyncpg come from their own ``pip --target`` directory, like arq.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from . import common

FAMILY = "pgqueuer"
os.environ["PGQUEUER_SCHEMA"] = common.pg_schema(FAMILY)  # before pgqueuer reads its settings

import asyncpg  # noqa: E402
from pgqueuer import PgQueuer  # noqa: E402
from pgqueuer.db import AsyncpgDriver  # noqa: E402
from pgqueuer.models import Job  # noqa: E402
from pgqueuer.queries import Queries  # noqa: E402

from .base import AsyncPeerClient  # noqa: E402

KINDS = ("noop", "io", "stamp", "cpu")


def _arg(job: Job) -> int:
    return int(job.payload or b"0")


@contextlib.asynccontextmanager
async def main() -> AsyncIterator[PgQueuer]:
    """PgQueuer's factory: an async context manager that yields the PgQueuer (its 1.x form)."""
    connection = await asyncpg.connect(common.PG_URL)
    pgq = PgQueuer(AsyncpgDriver(connection))

    @pgq.entrypoint("noop")
    async def noop(job: Job) -> None:
        await common.noop_async(_arg(job))

    @pgq.entrypoint("io")
    async def io(job: Job) -> None:
        await common.io_async(_arg(job))

    @pgq.entrypoint("stamp")
    async def stamp(job: Job) -> None:
        await common.stamp_async(_arg(job))

    @pgq.entrypoint("cpu")
    async def cpu(job: Job) -> None:
        await common.cpu_async(_arg(job))

    try:
        yield pgq
    finally:
        await connection.close()


class Client(AsyncPeerClient):
    batch_api = "queries.enqueue([entrypoint] * n, payloads, [0] * n)"

    def __init__(self, variant: str) -> None:
        super().__init__()
        self.connection = self.run(asyncpg.connect(common.PG_URL))
        self.queries = Queries(AsyncpgDriver(self.connection))

    def setup(self) -> None:
        """PgQueuer's tables, types, trigger and functions, installed once."""
        async def install() -> None:
            if not await self.queries.schema_is_installed():
                await self.queries.install()

        self.run(install())

    def enqueue_each(self, kind: str, n: int) -> None:
        async def each() -> None:
            for i in range(n):
                await self.queries.enqueue(kind, str(i).encode())

        self.run(each())

    def enqueue_batch(self, kind: str, n: int) -> None:
        self.run(self.queries.enqueue([kind] * n, [str(i).encode() for i in range(n)], [0] * n))

    def fill(self, kind: str, n: int) -> None:
        for start in range(0, n, 5000):
            size = min(start + 5000, n) - start
            self.run(self.queries.enqueue([kind] * size, [str(i).encode() for i in range(start, start + size)],
                                          [0] * size))

    def send(self, kind: str, i: int) -> None:
        self.run(self.queries.enqueue(kind, str(i).encode()))

    def close(self) -> None:
        self.run(self.connection.close())
        super().close()


def make_client(variant: str) -> Client:
    return Client(variant)
