"""taskiq's worker app: ``taskiq worker bench.peers.taskiq_app:broker``.

taskiq's defaults: two worker processes, 100 async tasks each, ack when saved. The
broker is taskiq-redis's ``RedisStreamBroker``, the one its README shows first and the
one with acknowledgements (``ListQueueBroker`` loses a message if its worker dies, so
it would not be a like-for-like peer of celeriac's leases). No result backend is set,
so results are off. The I/O run adds ``--max-async-tasks 500`` (2 x 500 in flight).
"""

from __future__ import annotations

from typing import Any

from taskiq_redis import RedisStreamBroker

from . import common
from .base import AsyncPeerClient

broker = RedisStreamBroker(url=common.REDIS_URL)


@broker.task(task_name="noop")
async def noop(i: int) -> None:
    await common.noop_async(i)


@broker.task(task_name="io")
async def io(i: int) -> None:
    await common.io_async(i)


@broker.task(task_name="stamp")
async def stamp(i: int) -> None:
    await common.stamp_async(i)


@broker.task(task_name="cpu")
async def cpu(i: int) -> None:
    await common.cpu_async(i)


TASKS: dict[str, Any] = {"noop": noop, "io": io, "stamp": stamp, "cpu": cpu}


class Client(AsyncPeerClient):
    batch_api = None  # taskiq sends one message per kiq()

    def __init__(self, variant: str) -> None:
        super().__init__()
        # startup() also creates the stream's consumer group; the group starts at "$",
        # so it must exist before the queue is filled or a new worker skips the backlog.
        self.run(broker.startup())

    def enqueue_each(self, kind: str, n: int) -> None:
        task = TASKS[kind]

        async def each() -> None:
            for i in range(n):
                await task.kiq(i)  # XADD has returned when kiq() does

        self.run(each())

    def enqueue_batch(self, kind: str, n: int) -> None:
        raise NotImplementedError("taskiq has no batch enqueue")

    def fill(self, kind: str, n: int) -> None:
        self.enqueue_each(kind, n)  # measured faster than concurrent sends here

    def send(self, kind: str, i: int) -> None:
        self.run(TASKS[kind].kiq(i))

    def close(self) -> None:
        self.run(broker.shutdown())
        super().close()


def make_client(variant: str) -> Client:
    return Client(variant)
