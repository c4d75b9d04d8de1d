"""Huey's consumer app: ``huey_consumer.py bench.peers.huey_app.huey``.

Huey on its SQLite storage (``SqliteHuey``, the one well-known queue with an embedded
SQLite broker), one file of its own that the harness deletes between runs. Huey's
defaults: one consumer process with one worker thread, polling the queue every 0.1 s,
backing off by 1.15x up to 10 s while it is empty; WAL journal. Results are off
(``results=False``: the store would keep every task's return value). The I/O run sets
``-w 1000`` (1,000 worker threads). Huey comes from its own ``pip --target`` directory.
"""

from __future__ import annotations

from typing import Any

from huey import SqliteHuey

from . import common

FAMILY = "huey"

common.SQLITE_DIR.mkdir(parents=True, exist_ok=True)
huey = SqliteHuey("bench", filename=str(common.sqlite_path(FAMILY)), results=False)


@huey.task(name="noop")
def noop(i: int) -> None:
    common.noop_sync(i)


@huey.task(name="io")
def io(i: int) -> None:
    common.io_sync(i)


@huey.task(name="stamp")
def stamp(i: int) -> None:
    common.stamp_sync(i)


@huey.task(name="cpu")
def cpu(i: int) -> None:
    common.cpu_sync(i)


TASKS: dict[str, Any] = {"noop": noop, "io": io, "stamp": stamp, "cpu": cpu}


class Client:
    # Huey's one call for many: a loop of single enqueues, each its own INSERT and commit.
    batch_api: str | None = "task.map(range(n)) (one INSERT and commit per task)"

    def __init__(self, variant: str) -> None:
        pass

    def enqueue_each(self, kind: str, n: int) -> None:
        task = TASKS[kind]  # calling a task enqueues it: one INSERT, committed
        for i in range(n):
            task(i)

    def enqueue_batch(self, kind: str, n: int) -> None:
        TASKS[kind].map(range(n))

    def fill(self, kind: str, n: int) -> None:
        TASKS[kind].map(range(n))

    def send(self, kind: str, i: int) -> None:
        TASKS[kind](i)

    def close(self) -> None:
        pass


def make_client(variant: str) -> Client:
    return Client(variant)
