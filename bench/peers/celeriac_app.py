"""celeriac's worker app: ``celeriac -A bench.peers.celeriac_app worker``.

Default settings throughout: leases, revoke checks and events on, acks-late, one worker
process with ``-c 100`` (``-c 1000`` for the I/O run). Results are off per task
(``ignore_result=True``); the default would store every result in Redis.

Two variants share this worker: ``celeriac`` sends the ``async def`` tasks (they run on
the worker's event loop, as an I/O-bound celeriac app would write them) and
``celeriac-sync`` sends the plain ``def`` twins (they run on the default thread pool,
like Celery's and Dramatiq's tasks).
"""

from __future__ import annotations

from typing import Any

from celeriac import Celery, group

from . import common

app = Celery("bench_celeriac", broker=common.REDIS_URL)


@app.task(name="bench.noop", ignore_result=True)
async def noop(i: int) -> None:
    await common.noop_async(i)


@app.task(name="bench.io", ignore_result=True)
async def io(i: int) -> None:
    await common.io_async(i)


@app.task(name="bench.stamp", ignore_result=True)
async def stamp(i: int) -> None:
    await common.stamp_async(i)


@app.task(name="bench.noop_sync", ignore_result=True)
def noop_sync(i: int) -> None:
    common.noop_sync(i)


@app.task(name="bench.io_sync", ignore_result=True)
def io_sync(i: int) -> None:
    common.io_sync(i)


@app.task(name="bench.stamp_sync", ignore_result=True)
def stamp_sync(i: int) -> None:
    common.stamp_sync(i)


ASYNC_TASKS: dict[str, Any] = {"noop": noop, "io": io, "stamp": stamp}
SYNC_TASKS: dict[str, Any] = {"noop": noop_sync, "io": io_sync, "stamp": stamp_sync}


class Client:
    batch_api: str | None = "group(task.s(i) for i in range(n)).apply_async()"

    def __init__(self, variant: str) -> None:
        self.tasks = SYNC_TASKS if variant == "celeriac-sync" else ASYNC_TASKS

    def enqueue_each(self, kind: str, n: int) -> None:
        delay = self.tasks[kind].delay  # returns once the broker holds the message
        for i in range(n):
            delay(i)

    def enqueue_batch(self, kind: str, n: int) -> None:
        task = self.tasks[kind]
        group(task.s(i) for i in range(n)).apply_async()

    def fill(self, kind: str, n: int) -> None:
        task = self.tasks[kind]
        for start in range(0, n, 5000):
            group(task.s(i) for i in range(start, min(start + 5000, n))).apply_async()

    def send(self, kind: str, i: int) -> None:
        self.tasks[kind].delay(i)

    def close(self) -> None:
        pass


def make_client(variant: str) -> Client:
    return Client(variant)
