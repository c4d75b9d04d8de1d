"""Dramatiq's worker app: ``dramatiq bench.peers.dramatiq_app``.

Dramatiq's defaults: Redis broker, one process per CPU (2) with 8 threads each, the
default middleware (no Results middleware, so results are off). The I/O run adds
``--threads 500`` so 1,000 tasks can be in flight, as every queue gets there.
"""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from . import common

broker = RedisBroker(url=common.REDIS_URL)  # type: ignore[no-untyped-call]
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name="bench_noop")
def noop(i: int) -> None:
    common.noop_sync(i)


@dramatiq.actor(actor_name="bench_io")
def io(i: int) -> None:
    common.io_sync(i)


@dramatiq.actor(actor_name="bench_stamp")
def stamp(i: int) -> None:
    common.stamp_sync(i)


@dramatiq.actor(actor_name="bench_cpu")
def cpu(i: int) -> None:
    common.cpu_sync(i)


ACTORS: dict[str, Any] = {"noop": noop, "io": io, "stamp": stamp, "cpu": cpu}


class Client:
    # dramatiq.group(...).run() sends its messages one by one; it is still the API a
    # Dramatiq user would reach for, so it is measured (and labelled) as such.
    batch_api: str | None = "group(actor.message(i) for i in range(n)).run()"

    def __init__(self, variant: str) -> None:
        pass

    def enqueue_each(self, kind: str, n: int) -> None:
        send = ACTORS[kind].send  # the enqueue script has run when send() returns
        for i in range(n):
            send(i)

    def enqueue_batch(self, kind: str, n: int) -> None:
        actor = ACTORS[kind]
        dramatiq.group(actor.message(i) for i in range(n)).run()  # type: ignore[no-untyped-call]

    def fill(self, kind: str, n: int) -> None:
        self.enqueue_each(kind, n)

    def send(self, kind: str, i: int) -> None:
        ACTORS[kind].send(i)

    def close(self) -> None:
        broker.close()


def make_client(variant: str) -> Client:
    return Client(variant)
