"""Tasks the reliability tests run in real worker processes.

Every run appends ``start``/``end`` lines (task id, pid, delivery count) to the file named
by ``RELIABILITY_LOG``, so the test can count executions per task id. Lines are short
and written with O_APPEND, so concurrent writers do not interleave.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

from celeriac import Celery

app = Celery(
    "reliability",
    broker=os.environ.get("RELIABILITY_BROKER_URL", "memory://"),
    broker_lease_seconds=float(os.environ.get("RELIABILITY_LEASE_S", "2")),
)


def note(event: str, request: Any) -> None:
    line = f"{event} {request.id} {os.getpid()} {request.delivery_count} {time.time():.3f}\n"
    fd = os.open(os.environ["RELIABILITY_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@app.task(bind=True)
async def nap(self: Any, seconds: float) -> dict[str, int]:
    note("start", self.request)
    await asyncio.sleep(seconds)
    note("end", self.request)
    return {"pid": os.getpid()}


@app.task(bind=True)
def blocking_nap(self: Any, seconds: float) -> dict[str, int]:
    note("start", self.request)
    time.sleep(seconds)
    note("end", self.request)
    return {"pid": os.getpid()}


@app.task(bind=True)
async def member(self: Any, index: int, seconds: float = 0.0) -> int:
    note("start", self.request)
    if seconds:
        await asyncio.sleep(seconds)
    note("end", self.request)
    return index


@app.task(bind=True)
def collect(self: Any, results: list[int]) -> list[int]:
    note("start", self.request)
    note("end", self.request)
    return results


@app.task
def echo(*args: Any, **kwargs: Any) -> list[Any]:
    return [list(args), kwargs]


@app.task
def exits(code: int) -> None:
    sys.exit(code)  # a task body that ends its process's interpreter if nothing stops it


@app.task
async def interrupted() -> None:
    raise KeyboardInterrupt


@app.task
def undecodable_name() -> str:
    return "report-\udcff.pdf"  # what os.listdir returns for a name that is not UTF-8


@app.task
async def undecodable_error() -> None:
    raise FileNotFoundError("no such file: report-\udcff.pdf")
