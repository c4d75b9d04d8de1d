"""Celery's worker app: ``celery -A bench.peers.celery_app worker [-P threads]``.

On PostgreSQL the broker is kombu's SQLAlchemy transport (``sqla+postgresql+psycopg://``).

Celery's defaults: no result backend (so results are off; ``ignore_result=True`` too),
acks early, prefetch multiplier 4, prefork with ``-c`` = CPU count (2 here). The same
app serves the prefork and the threads rows; only the worker's command line differs.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, group

from . import common

if common.SERVER == "postgres":
    # kombu's SQLAlchemy transport (SQLAlchemy from the side directory, on the venv's
    # psycopg 3), its two tables in the schema bench_celery through libpq's search_path.
    app = Celery("bench_celery", broker="sqla+" + common.PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    app.conf.broker_transport_options = {"connect_args": {"options": common.pg_search_path("celery")}}
else:
    app = Celery("bench_celery", broker=common.REDIS_URL)
app.conf.task_ignore_result = True
# Celery 5 warns at start-up unless this is said explicitly; True is its default anyway.
app.conf.broker_connection_retry_on_startup = True


@app.task(name="bench.noop", ignore_result=True)  # type: ignore[untyped-decorator]
def noop(i: int) -> None:
    common.noop_sync(i)


@app.task(name="bench.io", ignore_result=True)  # type: ignore[untyped-decorator]
def io(i: int) -> None:
    common.io_sync(i)


@app.task(name="bench.stamp", ignore_result=True)  # type: ignore[untyped-decorator]
def stamp(i: int) -> None:
    common.stamp_sync(i)


@app.task(name="bench.cpu", ignore_result=True)  # type: ignore[untyped-decorator]
def cpu(i: int) -> None:
    common.cpu_sync(i)


TASKS: dict[str, Any] = {"noop": noop, "io": io, "stamp": stamp, "cpu": cpu}


class Client:
    batch_api: str | None = "group(task.s(i) for i in range(n)).apply_async()"

    def __init__(self, variant: str) -> None:
        pass

    def enqueue_each(self, kind: str, n: int) -> None:
        delay = TASKS[kind].delay  # kombu's LPUSH returns once Redis holds the message
        for i in range(n):
            delay(i)

    def enqueue_batch(self, kind: str, n: int) -> None:
        group(TASKS[kind].s(i) for i in range(n)).apply_async()

    def fill(self, kind: str, n: int) -> None:
        for start in range(0, n, 5000):
            group(TASKS[kind].s(i) for i in range(start, min(start + 5000, n))).apply_async()

    def send(self, kind: str, i: int) -> None:
        TASKS[kind].delay(i)

    def close(self) -> None:
        pass


def make_client(variant: str) -> Client:
    return Client(variant)
