"""celeriac's worker app: ``celeriac -A bench.peers.celeriac_app worker``.

Default settings throughout: leases, revoke checks and events on, acks-late, one worker
process with ``-c 100`` (``-c 1000`` for the I/O run). Results are off per task
(``ignore_result=True``); the default would store every result in Redis.

Four variants share this worker app: ``celeriac`` sends the ``async def`` tasks (they run
on the worker's event loop, as an I/O-bound celeriac app would write them),
``celeriac-sync`` sends the plain ``def`` twins (they run on the default thread pool,
like Celery's and Dramatiq's tasks), ``celeriac-prefork`` sends the ``def`` twins to
``-P prefork`` (children, one per CPU, like Celery's default pool), and
``celeriac-processes`` sends the ``async def`` tasks to ``--processes 2``.
"""

from __future__ import annotations

import os
from typing import Any

from celeriac import Celery, group

from . import common

app = Celery("bench_celeriac", broker=common.broker_url("celeriac"))  # Redis, PostgreSQL or SQLite
# BENCH_CELERIAC_EVENTS=0: the worker writes no events and no per-minute aggregates, to measure
# what they cost (worker_send_task_events is on by default, as here otherwise).
if os.environ.get("BENCH_CELERIAC_EVENTS", "1").lower() in ("0", "off", "false", "no"):
    app.conf.worker_send_task_events = False


@app.task(name="bench.noop", ignore_result=True)
async def noop(i: int) -> None:
    await common.noop_async(i)


@app.task(name="bench.io", ignore_result=True)
async def io(i: int) -> None:
    await common.io_async(i)


@app.task(name="bench.stamp", ignore_result=True)
async def stamp(i: int) -> None:
    await common.stamp_async(i)


@app.task(name="bench.cpu", ignore_result=True)
async def cpu(i: int) -> None:
    await common.cpu_async(i)


@app.task(name="bench.noop_sync", ignore_result=True)
def noop_sync(i: int) -> None:
    common.noop_sync(i)


@app.task(name="bench.io_sync", ignore_result=True)
def io_sync(i: int) -> None:
    common.io_sync(i)


@app.task(name="bench.stamp_sync", ignore_result=True)
def stamp_sync(i: int) -> None:
    common.stamp_sync(i)


@app.task(name="bench.cpu_sync", ignore_result=True)
def cpu_sync(i: int) -> None:
    common.cpu_sync(i)


ASYNC_TASKS: dict[str, Any] = {"noop": noop, "io": io, "stamp": stamp, "cpu": cpu}
SYNC_TASKS: dict[str, Any] = {"noop": noop_sync, "io": io_sync, "stamp": stamp_sync, "cpu": cpu_sync}


SYNC_VARIANTS = ("celeriac-sync", "celeriac-prefork")  # the rows that send the plain def twins


class Client:
    batch_api: str | None = "group(task.s(i) for i in range(n)).apply_async()"

    def __init__(self, variant: str) -> None:
        self.tasks = SYNC_TASKS if variant in SYNC_VARIANTS else ASYNC_TASKS

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
