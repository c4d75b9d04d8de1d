"""The I/O run without a queue: N concurrent GETs from one process. ``python -m bench.io_floor URL N``.

The same client as the async tasks (``common.http_async_client()``), on uvloop when
installed as celeriac's worker is. Its makespan is what the client alone costs at that
concurrency, so the report can say how much of a queue's I/O makespan is the queue's.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from .peers.common import http_async_client


async def run(url: str, n: int) -> float:
    async with http_async_client() as client:
        started = time.perf_counter()
        await asyncio.gather(*(client.get(url) for _ in range(n)))
        return time.perf_counter() - started


def main() -> None:
    url, n = sys.argv[1], int(sys.argv[2])
    try:
        import uvloop
    except ImportError:
        seconds = asyncio.run(run(url, n))
    else:
        seconds = uvloop.run(run(url, n))
    print(json.dumps({"seconds": seconds, "n": n}))


if __name__ == "__main__":
    main()
