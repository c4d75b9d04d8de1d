"""procrastinate's worker app: ``procrastinate --app=bench.peers.procrastinate_app.app worker``.

procrastinate's defaults: one worker process with ``concurrency=1`` (one job at a time),
``LISTEN/NOTIFY`` wake-ups with a 5 s safety poll, finished jobs kept in its table with
the status ``succeeded`` (its default; the task bodies return nothing). The I/O run sets
``--concurrency 1000``. Its tables are in the schema ``bench_procrastinate`` of the
bench's database (through libpq's ``search_path``), made by ``setup()`` on first use.

procrastinate and its psycopg come from their own ``pip --target`` directory, like arq.
"""

from __future__ import annotations

from typing import Any

from procrastinate import App, PsycopgConnector

from . import common

FAMILY = "procrastinate"

app = App(connector=PsycopgConnector(conninfo=common.PG_URL,
                                     kwargs={"options": common.pg_search_path(FAMILY)}))


@app.task(name="noop")
async def noop(i: int) -> None:
    await common.noop_async(i)


@app.task(name="io")
async def io(i: int) -> None:
    await common.io_async(i)


@app.task(name="stamp")
async def stamp(i: int) -> None:
    await common.stamp_async(i)


@app.task(name="cpu")
async def cpu(i: int) -> None:
    await common.cpu_async(i)


TASKS: dict[str, Any] = {"noop": noop, "io": io, "stamp": stamp, "cpu": cpu}


class Client:
    batch_api: str | None = "task.batch_defer(*({'i': i} for i in range(n)))"

    def __init__(self, variant: str) -> None:
        app.open()  # sync defer: procrastinate's synchronous psycopg pool

    def setup(self) -> None:
        """procrastinate's schema (tables, types, functions), applied once."""
        with app.connector.get_sync_connector().pool.connection() as conn:  # type: ignore[attr-defined]
            exists = conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL").fetchone()[0]
        if not exists:
            app.schema_manager.apply_schema()

    def enqueue_each(self, kind: str, n: int) -> None:
        defer = TASKS[kind].defer  # returns once the job's row is committed
        for i in range(n):
            defer(i=i)

    def enqueue_batch(self, kind: str, n: int) -> None:
        TASKS[kind].batch_defer(*({"i": i} for i in range(n)))

    def fill(self, kind: str, n: int) -> None:
        for start in range(0, n, 5000):
            TASKS[kind].batch_defer(*({"i": i} for i in range(start, min(start + 5000, n))))

    def send(self, kind: str, i: int) -> None:
        TASKS[kind].defer(i=i)

    def close(self) -> None:
        app.close()


def make_client(variant: str) -> Client:
    return Client(variant)
