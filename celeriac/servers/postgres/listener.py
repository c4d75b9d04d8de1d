"""The LISTEN connection: the database's notifications turned into wake-ups in this process.

Publish, release, retry and requeue notify each queue they touched (its channel is
``{schema}.queue_channel(queue)``, in the same transaction, so a listener wakes after the
commit, never before); writing a ready result notifies the results channel with the task
id. One connection per ``PostgresConnection`` (a worker process's event loop) listens,
outside the pool, on the channels of the queues its ``reserve`` calls wait on (and on the
channel where publishers hand those workers their messages, ``handoff.py``), and on the
results channel only while a ``wait_ready`` waits: every ready result of every worker is
announced there, so nobody else should pay for reading them. When the last ``wait_ready``
ends and no ``reserve`` ever waited here (a web process's ``get()``), the listener stops
and closes its connection: on a sync caller's private event loop nothing would read it
between calls, and a connection that listens without reading holds back the server's
notification queue for everyone.

A waiter subscribes to the notifier first, then makes sure its channels are listened to
(``listen_queues``/``hold_results`` return once the server confirmed the LISTEN), then
looks: a notification sent after its look always wakes it. If the connection drops,
notifications are lost until it is back: every waiter is woken to look again, and
``live`` is false meanwhile, so waiters poll instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from psycopg import AsyncConnection, sql

from .connection import Row, backoff_s, log_outage_once, queue_key, result_key, results_channel

if TYPE_CHECKING:
    from .connection import PostgresConnection

logger = logging.getLogger("celeriac.postgres")

CONFIRM_WAIT_S = 2.0  # how long a waiter waits for its LISTEN before it polls instead
IDLE_CHECK_S = 5.0  # with nothing to do, the listener still drops unused channels this often


class Listener:
    def __init__(self, connection: PostgresConnection) -> None:
        self.connection = connection
        self.results_channel = results_channel(connection.target.schema)
        self.live = False  # listening on a working connection; waiters may wait on notices alone
        self._failing = False  # the connection failed and the listener is backing off
        self._conn: AsyncConnection[Row] | None = None  # the running task's connection
        self._task: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()  # a task is started or stopped by one caller at a time
        self._queue_channels: dict[str, str] = {}  # queue -> channel (asked of the database once)
        self._wanted_queues: set[str] = set()
        self._queue_of: dict[str, str] = {}  # channel -> queue, for the channels listened to
        self._result_waiters = 0
        self._listening: set[str] = set()
        self._changed = asyncio.Event()
        self._confirmations: list[asyncio.Future[bool]] = []

    # --- what waiters call --------------------------------------------------------------

    async def listen_queues(self, queues: Iterable[str]) -> bool:
        """Listen on these queues' channels; True once the server confirmed it (False: poll)."""
        wanted = set(queues)
        if self.live and all(self._queue_channels.get(q) in self._listening for q in wanted):
            return True
        self._wanted_queues |= wanted
        return await self._confirmed()

    async def hold_results(self) -> bool:
        """Listen on the results channel until ``release_results``; True once confirmed."""
        self._result_waiters += 1
        if self.live and self.results_channel in self._listening:
            return True
        return await self._confirmed()

    async def release_results(self) -> None:
        """Stop holding the results channel; the last holder waits until it is left.

        Left at once, not at some later pass (see the module's docstring); with no queue
        to listen for either, the listener stops altogether.
        """
        self._result_waiters -= 1
        if self._result_waiters > 0:
            return
        if not self._wanted_queues:
            await self.close()
        elif self.results_channel in self._listening:
            await self._confirmed()

    async def _confirmed(self) -> bool:
        confirmed: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._confirmations.append(confirmed)
        self._changed.set()
        try:
            async with self._starting:
                if self._task is None or self._task.done():
                    self._task = asyncio.create_task(self._run(), name="celeriac-postgres-listener")
            if self._failing:
                return False  # no waiting on a listener that is backing off: poll until it is back
            return await asyncio.wait_for(asyncio.shield(confirmed), CONFIRM_WAIT_S)
        except TimeoutError:
            return False
        finally:
            if confirmed in self._confirmations:
                self._confirmations.remove(confirmed)

    async def close(self) -> None:
        """Stop listening and close the connection; a later waiter starts the listener again."""
        async with self._starting:
            task, self._task = self._task, None
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self._queue_channels.clear()

    # --- the listening task -------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        conn: AsyncConnection[Row] | None = None
        try:
            while True:
                try:
                    if conn is None:
                        conn = self._conn = await self.connection.connect_one()
                        self._listening = set()
                        if failures:
                            logger.warning("listening for PostgreSQL notifications at %s again",
                                           self.connection.target.safe_url)
                            self._wake_all()  # notices sent meanwhile are lost: everyone looks again
                    # Only the waiters already asking are answered by this pass: one asking
                    # while it runs sets _changed again, and the next pass answers it.
                    answering = list(self._confirmations)
                    self._changed.clear()
                    await self._apply(conn)
                    self.live = True
                    self._failing = False
                    failures = 0
                    self._confirm(True, answering)
                    await self._read_until_changed(conn)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # psycopg.Error, OSError: the connection is gone
                    self.live = False
                    self._failing = True
                    failures += 1
                    if failures == 1:
                        log_outage_once(self.connection.target.safe_url, "listen", exc)
                    self._confirm(False, list(self._confirmations))
                    await _close_quietly(conn)
                    conn = self._conn = None
                    self._wake_all()
                    await asyncio.sleep(backoff_s(failures))
        finally:
            self.live = self._failing = False
            self._listening = set()
            self._confirm(False, list(self._confirmations))
            self._conn = None
            await _close_quietly(conn)

    async def _apply(self, conn: AsyncConnection[Row]) -> None:
        """LISTEN on what waiters need now, UNLISTEN what nobody needs any more."""
        new_queues = sorted(self._wanted_queues - self._queue_channels.keys())
        if new_queues:
            cursor = await conn.execute(
                sql.SQL("SELECT q, {}.queue_channel(q) FROM unnest(%s::text[]) AS q").format(
                    sql.Identifier(self.connection.target.schema)),
                [new_queues],
            )
            self._queue_channels.update({str(q): str(ch) for q, ch in await cursor.fetchall()})
        wanted = {self._queue_channels[q] for q in self._wanted_queues}
        if wanted:  # a reserve waits here: it may be handed messages (handoff.py)
            wanted.add(self.connection.handoffs.channel)
        if self._result_waiters > 0:
            wanted.add(self.results_channel)
        commands = [sql.SQL("LISTEN {}").format(sql.Identifier(ch)) for ch in sorted(wanted - self._listening)]
        commands += [sql.SQL("UNLISTEN {}").format(sql.Identifier(ch)) for ch in sorted(self._listening - wanted)]
        if commands:
            await conn.execute(sql.SQL("; ").join(commands))
        self._listening = wanted
        self._queue_of = {ch: q for q, ch in self._queue_channels.items() if q in self._wanted_queues}

    async def _read_until_changed(self, conn: AsyncConnection[Row]) -> None:
        """Dispatch notifications until a waiter needs a channel added (or a while passed)."""
        reader = asyncio.ensure_future(self._read(conn))
        changed = asyncio.ensure_future(self._changed.wait())
        try:
            await asyncio.wait({reader, changed}, timeout=IDLE_CHECK_S, return_when=asyncio.FIRST_COMPLETED)
        finally:
            changed.cancel()
            # Cancelling the read is safe: psycopg is only waiting for the socket to be
            # readable there, with nothing half-read.
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            with contextlib.suppress(asyncio.CancelledError):
                await changed

    async def _read(self, conn: AsyncConnection[Row]) -> None:
        async for notice in conn.notifies():
            if notice.channel == self.results_channel:
                self.connection.notifier.notify(result_key(notice.payload))
            elif notice.channel == self.connection.handoffs.channel:
                self.connection.handoffs.deliver(notice.payload)
            else:
                queue = self._queue_of.get(notice.channel)
                if queue is not None:
                    self.connection.notifier.notify(queue_key(queue))

    def _confirm(self, value: bool, answering: list[asyncio.Future[bool]]) -> None:
        for confirmed in answering:
            if not confirmed.done():
                confirmed.set_result(value)
            if confirmed in self._confirmations:
                self._confirmations.remove(confirmed)

    def _wake_all(self) -> None:
        for queue in self._wanted_queues:
            self.connection.notifier.notify(queue_key(queue))


async def _close_quietly(conn: AsyncConnection[Row] | None) -> None:
    if conn is not None:
        with contextlib.suppress(Exception):
            await conn.close()
