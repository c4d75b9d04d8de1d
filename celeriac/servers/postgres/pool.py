"""A pool of connections to one server, with no tasks of its own.

Connections are opened when a call needs one and none is idle, kept for the next call,
and at most ``max_size`` are in use at once; a caller waits up to ``timeout_s`` for one.
A connection that comes back broken, or in the middle of something (its caller was
cancelled during a statement), is closed instead of kept.

Why not psycopg_pool: it runs a scheduler and worker tasks on the pool's event loop. A
sync caller's private loop (``_bridge.py``) runs only while one of its calls is under way,
and an app dropped without closing its clients leaves those tasks to be destroyed while
pending. This pool does everything inside the calls themselves, as redis-py's does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus

Connection = AsyncConnection[tuple[Any, ...]]


class PoolExhausted(Exception):
    """Every connection stayed in use for the pool's whole timeout."""


class ConnectFailed(Exception):
    """Opening a new connection failed (``__cause__`` is psycopg's error); nothing was sent."""


class ConnectionPool:
    def __init__(self, connect: Callable[[], Awaitable[Connection]], max_size: int, timeout_s: float) -> None:
        self.max_size = max_size
        self.timeout_s = timeout_s
        self._connect = connect
        self._idle: deque[Connection] = deque()
        self._slots = asyncio.Semaphore(max_size)
        self.in_use = 0
        self.closed = False

    def put_idle(self, conn: Connection) -> None:
        """Keep an open connection for the next call (the one the first open checked with)."""
        self._idle.append(conn)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        if self._slots.locked():  # every connection in use: wait, but not for ever
            try:
                async with asyncio.timeout(self.timeout_s):
                    await self._slots.acquire()
            except TimeoutError:
                raise PoolExhausted from None
        else:
            await self._slots.acquire()  # at once; no timer to set and cancel
        self.in_use += 1
        conn: Connection | None = None
        try:
            conn = self._idle.pop() if self._idle else None  # the most recently used: the likeliest alive
            if conn is None:
                try:
                    conn = await self._connect()
                except psycopg.OperationalError as exc:
                    raise ConnectFailed(str(exc)) from exc
            yield conn
        finally:
            self.in_use -= 1
            self._slots.release()
            if conn is not None:
                await self._give_back(conn)

    async def _give_back(self, conn: Connection) -> None:
        reusable = (not self.closed and not conn.closed and not conn.broken
                    and conn.info.transaction_status == TransactionStatus.IDLE)
        if reusable and len(self._idle) < self.max_size:
            self._idle.append(conn)
        else:
            with contextlib.suppress(Exception):
                await conn.close()

    async def discard_idle(self) -> None:
        """Close every idle connection: after one was found dead, the others likely are too."""
        while self._idle:
            conn = self._idle.popleft()
            with contextlib.suppress(Exception):
                await conn.close()

    async def close(self) -> None:
        """Close the idle connections now; those in use are closed when they come back."""
        self.closed = True
        await self.discard_idle()
