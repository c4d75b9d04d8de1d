"""Hand-off: a new message given to an idle worker by the statement that publishes it.

An idle worker's wake-up costs two round trips after ``delay()``: the notice, then the
reserve that leases the message (about 1 ms of the ~3 ms from ``delay()`` to the start on
an idle machine). So a worker about to wait offers its free slots (``reserve_status``
writes a row of ``waiters``, 0006_handoff.sql) and ``publish_one`` gives a new message to
such a waiter directly: inserted already leased to it (token 1), and sent to it whole,
body included, on the worker's own notification channel. The worker starts it on
arrival.

What keeps this as safe as a reserve:

- The publisher takes one free slot per message, under a row lock that other publishers
  skip (they fall back to the queue), and any reserve of the worker withdraws the offer
  first; a worker is never handed more than it offered. A message that arrives while no
  reserve of that worker is waiting, or beyond what the waiting one asked for, is
  released (back to the head of its queue) at once, never kept in a buffer.
- A handed message is leased only for the short ``HANDOFF_LEASE_MS``: a worker that died
  or froze after its offer lets it go back to the queue within seconds, not a whole
  lease. The worker extends it to its full lease as the task starts (``confirm``); every
  fenced call on it (ack, retry, ...) waits for that, and if the extension fails the
  delivery is treated as a lease lost. A notice that arrives after its short lease may
  have run out is released, not started.
- Offers expire (``OFFER_S``) and are withdrawn when the client closes; a notice lost
  with the listening connection leaves its message leased for the short lease only.

Only ``delay()``-like sends take this path: one message, due now, small enough for a
notification's 8,000 bytes, outside a Django transaction. Batches, scheduled and large
messages go through the queue as before.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import time
from typing import TYPE_CHECKING

import msgspec

from ...message import Delivery
from ..contracts import OutgoingMessage
from .connection import fenced

if TYPE_CHECKING:
    from .connection import PostgresConnection

logger = logging.getLogger("celeriac.postgres")

HANDOFF_LEASE_MS = 5000  # a handed message's lease until the worker confirms it (or its lease, if shorter)
OFFER_S = 5.0  # an offer holds this long; a waiting reserve offers again after each wake-up
# A body up to this size travels in the notice: base64 makes it 6,000 characters, and the
# ids and queue name (NAMES_MAX together) fit in what is left of the 8,000 bytes.
BODY_MAX = 4500
NAMES_MAX = 1000
# A handed message is released, not started, when its short lease ends within this (or
# within half that lease, when it is shorter than two of these).
CLOSE_CALL_MS = 1000


def may_hand_off(message: OutgoingMessage) -> bool:
    """Whether ``publish_one`` may hand ``message`` to a waiting worker."""
    return (message.eta_ms is None and len(message.body) <= BODY_MAX
            and len(message.task_id.encode()) + len(message.queue.encode()) <= NAMES_MAX)


class _Notice(msgspec.Struct, frozen=True):
    """The payload ``publish_one`` sends (sql/transport.sql)."""

    worker: str
    id: str
    queue: str
    lease_until_ms: int
    revoked: bool
    body: str  # base64


_decode = msgspec.json.Decoder(_Notice).decode


class Inbox:
    """What one waiting reserve call of a worker has been handed."""

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id
        self.deliveries: list[Delivery] = []
        self._wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._clock: tuple[float, int] | None = None  # (time.monotonic(), the database's now in ms) then
        self._margin_ms = CLOSE_CALL_MS

    def wake(self) -> asyncio.Future[None]:
        """A future set when something is handed in; a fresh one once the last was set."""
        if self._wake.done():
            self._wake = asyncio.get_running_loop().create_future()
        return self._wake

    def set_clock(self, db_now_ms: int, handoff_ms: int) -> None:
        """The database's now as a statement just read it, and the hand-off lease: to judge handed leases by."""
        self._clock = (time.monotonic(), db_now_ms)
        self._margin_ms = min(CLOSE_CALL_MS, handoff_ms // 2)

    def put(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)
        if not self._wake.done():
            self._wake.set_result(None)

    def take(self, count: int) -> tuple[list[Delivery], list[Delivery]]:
        """Up to ``count`` deliveries to start, and those to release (their lease is about to end)."""
        taken, self.deliveries = self.deliveries[:count], self.deliveries[count:]
        if self._clock is None:
            return taken, []
        at, db_now_ms = self._clock
        now_ms = db_now_ms + int((time.monotonic() - at) * 1000)
        start = [d for d in taken if d.lease_expires_at_ms - now_ms > self._margin_ms]
        return start, [d for d in taken if d.lease_expires_at_ms - now_ms <= self._margin_ms]


class Handoffs:
    """A connection's hand-off channel, and the inboxes of the reserve calls waiting on it."""

    def __init__(self, connection: PostgresConnection) -> None:
        self.channel = f"celeriac_handoff_{secrets.token_hex(8)}"
        self.connection = connection
        self._inboxes: dict[str, Inbox] = {}
        self.offered: set[str] = set()  # the worker ids whose offers this client wrote
        self._releasing: set[asyncio.Future[list[tuple[object, ...]]]] = set()

    def open(self, worker_id: str) -> Inbox | None:
        """An inbox for a reserve call of ``worker_id``; None when one is open already."""
        if worker_id in self._inboxes:
            return None
        inbox = self._inboxes[worker_id] = Inbox(worker_id)
        return inbox

    def close(self, inbox: Inbox) -> None:
        """The reserve call left: what it was handed and did not take goes back to its queue."""
        if self._inboxes.get(inbox.worker_id) is inbox:
            del self._inboxes[inbox.worker_id]
        self.release(inbox.deliveries)
        inbox.deliveries = []

    def release(self, deliveries: list[Delivery]) -> None:
        """Release ``deliveries`` in the background (the caller may be cancelled meanwhile)."""
        if not deliveries:
            return
        task = asyncio.ensure_future(self.connection.fetch("release", fenced(deliveries)))
        self._releasing.add(task)
        task.add_done_callback(self._released)

    def _released(self, task: asyncio.Future[list[tuple[object, ...]]]) -> None:
        self._releasing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Not lost: its short lease runs out and the message goes back to its queue.
            logger.warning("could not release a handed message: %s", task.exception())

    def deliver(self, payload: str) -> None:
        """A notice on the channel (the listener's reading task)."""
        try:
            notice = _decode(payload)
            body = base64.b64decode(notice.body)
        except (msgspec.DecodeError, ValueError) as exc:
            logger.warning("ignored a malformed hand-off notice (%s): %.200r", exc, payload)
            return
        delivery = Delivery(notice.id, notice.queue, body, 1, notice.lease_until_ms, is_revoked=notice.revoked)
        inbox = self._inboxes.get(notice.worker)
        if inbox is None:
            self.release([delivery])
        else:
            inbox.put(delivery)

    async def close_all(self) -> None:
        """A closing client: its offers withdrawn, the releases under way finished."""
        if self._releasing:
            await asyncio.wait(set(self._releasing))
        if self.offered:
            worker_ids, self.offered = sorted(self.offered), set()
            try:
                await self.connection.execute("withdraw_offers", {"worker_ids": worker_ids}, retry=False)
            except Exception as exc:  # they run out on their own within OFFER_S
                logger.warning("could not withdraw hand-off offers on closing: %s", exc)
