"""The I/O task's target: answers every request after 100 ms. ``python -m bench.slow_server PORT``.

A bare ASGI app on uvicorn in a process of its own, so its event loop never shares an
interpreter with a worker under test.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn

DELAY_S = 0.1

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await asyncio.sleep(DELAY_S)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


def main() -> None:
    # backlog above the 1,000 connections one I/O run opens at once; keep-alive longer
    # than any run, because a client reusing a connection just as the server closes it
    # gets "Server disconnected" (and Dramatiq then retries 15 s later)
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False,
                backlog=4096, timeout_keep_alive=300)


if __name__ == "__main__":
    main()
