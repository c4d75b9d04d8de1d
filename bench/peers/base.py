"""The producer side every peer module offers to the driver, and a helper for async peers."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class PeerClient(Protocol):
    """Sends benchmark tasks by kind ("noop", "io", "stamp") through one queue's own API."""

    #: how the batch API is spelled, or None when the queue has none ("n/a" in the table)
    batch_api: str | None

    def enqueue_each(self, kind: str, n: int) -> None:
        """Send n tasks one at a time; each call returns once Redis holds the message."""

    def enqueue_batch(self, kind: str, n: int) -> None:
        """Send n tasks with the queue's batch API (only called when batch_api is set)."""

    def fill(self, kind: str, n: int) -> None:
        """Put n tasks in the queue as fast as the API allows (untimed set-up)."""

    def send(self, kind: str, i: int) -> None:
        """Send one task and return once Redis holds it."""

    def close(self) -> None: ...


class AsyncPeerClient:
    """Runs an async-only queue's producer on one private event loop.

    The timed loop itself is a coroutine (``await`` in a loop), so wrapping it costs one
    ``run_until_complete`` per measurement, not per message.
    """

    batch_api: str | None = None

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def run(self, awaitable: Coroutine[Any, Any, T] | asyncio.Future[T]) -> T:
        return self.loop.run_until_complete(awaitable)

    def close(self) -> None:
        self.loop.close()
