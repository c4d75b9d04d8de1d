"""Batched acknowledgements and result writes.

Tasks that finish while a flush is in flight wait for the next one, so under load one
broker round trip acknowledges many tasks, and an idle worker flushes at once. Leases
stay held (and renewed) until their ack is written; a flush that fails keeps its items
for the next attempt, so nothing is dropped while the broker is away. A record that
cannot be encoded is never retried: it would hold every later ack behind it forever, so
it is replaced by a FAILURE that says why, and the batch goes on.

Events and the per-minute counts (``celeriac/stats.py``) ride along: a flush writes the
events and counts gathered so far in one more call (``emit_events(events, stats=...)``)
after its acks, at most once per ``EVENT_BATCH_S`` (under load, flushes come far more
often: the events of many flushes then share one call, so they cost no round trip per
task nor per flush). An event never triggers a flush by itself, but one waiting longer
than ``EVENT_FLUSH_S`` without an ack to go with it (a long task's start) is written on
its own then. Events that cannot be written are dropped (they are a view for people);
counts are kept for the next write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ..backoff import Backoff
from ..message import FAILURE, Delivery, ResultRecord, encode_record
from ..serialization import safe_text
from ..servers.contracts import ControlStore, ResultStore, Transport
from ..stats import StatsBatch, StatsRow
from .lease import LeaseKeeper

logger = logging.getLogger("celeriac.worker")

RETRY_PAUSE_MAX_S = 2.0
EVENT_FLUSH_S = 0.5  # an event with no ack to go with waits at most this long
EVENT_BATCH_S = 0.1  # events and counts are written at most this often (with the flush that follows)
EVENT_BATCH_MAX = 5000  # ... or as soon as this many are waiting


class CompletionBuffer:
    def __init__(self, broker: Transport, control: ControlStore, store: ResultStore | None, keeper: LeaseKeeper,
                 acks_carry_results: bool = False) -> None:
        self.broker = broker
        self.control = control  # where the events go
        self.store = store
        self.keeper = keeper
        # Whether broker.ack(results=...) writes into the store in the same round trip: the
        # store is on the broker's server and that server says so (servers/<name>/__init__.py).
        self.writes_results_with_ack = store is not None and acks_carry_results
        self._acks: list[Delivery] = []
        self._ack_results: list[ResultRecord] = []
        self._results: list[ResultRecord] = []  # written without an ack: STARTED, RETRY, REVOKED
        self._events: list[bytes] = []
        self.stats = StatsBatch()  # the worker's counts since the last flush (it adds to them directly)
        self._event_timer: asyncio.TimerHandle | None = None
        self._next_emit = 0.0  # loop time before which a flush leaves its events for a later one
        self._wanted = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._writing = Backoff(logger, "could not write acks and results", "writing acks and results again",
                                base_s=0.1, cap_s=RETRY_PAUSE_MAX_S)

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self._run(), name="celeriac-flusher")
        return self._task

    def describe_pending(self) -> str:
        return f"{len(self._acks)} acks and {len(self._ack_results) + len(self._results)} results"

    def ack(self, delivery: Delivery, record: ResultRecord | None) -> None:
        self._acks.append(delivery)
        if record is not None and self.store is not None:
            self._ack_results.append(record)
        self._kick()

    def record(self, record: ResultRecord) -> None:
        if self.store is not None:
            self._results.append(record)
            self._kick()

    def event(self, raw: bytes) -> None:
        """Queue an event for the next flush: the next ack's, or one within ``EVENT_FLUSH_S``."""
        self._events.append(raw)
        if self._event_timer is None and self._task is not None:
            self._event_timer = asyncio.get_running_loop().call_later(EVENT_FLUSH_S, self._flush_events)

    def _flush_events(self) -> None:
        self._event_timer = None
        if self._events or self.stats:
            self._wanted.set()

    def _kick(self) -> None:
        self._idle.clear()
        self._wanted.set()

    async def drain(self) -> None:
        """Wait until everything buffered so far is written.

        While the broker is away this waits for it; callers that must end bound it.
        """
        while self._acks or self._results or not self._idle.is_set():
            self._wanted.set()
            await self._idle.wait()
            if self._acks or self._results:
                await asyncio.sleep(0)

    async def stop(self) -> None:
        """Stop flushing; call ``drain()`` first (bounded) for what is buffered."""
        if self._event_timer is not None:
            self._event_timer.cancel()
            self._event_timer = None
        if self._events or self.stats:
            events, self._events = self._events, []
            stats = self.stats.take()
            try:
                await self.control.emit_events(events, stats=stats)
            except Exception as exc:
                logger.warning("could not write %d events at shutdown: %s", len(events), exc)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            acks, ack_results, results = self._acks, self._ack_results, self._results
            self._acks, self._ack_results, self._results = [], [], []
            events, self._events = self._events, []
            try:
                await self._write(acks, ack_results, results)
                self._writing.succeeded()
            except Exception as exc:
                checked_ack_results, checked_results = _encodable(ack_results), _encodable(results)
                if checked_ack_results is not ack_results or checked_results is not results:
                    # A record at fault, not the broker: write the batch again at once without it.
                    self._acks[:0], self._ack_results[:0] = acks, checked_ack_results
                    self._results[:0] = checked_results
                    self._events[:0] = events
                    self._wanted.set()
                    continue
                self._acks[:0], self._ack_results[:0], self._results[:0] = acks, ack_results, results
                self._events[:0] = events
                await asyncio.sleep(self._writing.failed(exc))
                self._wanted.set()
                continue
            if events or self.stats:
                now = asyncio.get_running_loop().time()
                if now >= self._next_emit or len(events) >= EVENT_BATCH_MAX:
                    self._next_emit = now + EVENT_BATCH_S
                    await self._emit(events, self.stats.take())
                else:  # written with a later flush, or by the timer
                    self._events[:0] = events
                    if self._event_timer is None:
                        self._event_timer = asyncio.get_running_loop().call_later(
                            self._next_emit - now, self._flush_events)
            if not (self._acks or self._results):
                self._idle.set()

    async def _emit(self, events: list[bytes], stats: list[StatsRow]) -> None:
        try:
            await self.control.emit_events(events, stats=stats)
        except Exception as exc:  # events are a view for people: never hold acks back
            logger.debug("dropped %d events: %s", len(events), exc)
            self.stats.put_back(stats)  # counts are kept for the next flush (bounded: one row per key)

    async def _write(self, acks: list[Delivery], ack_results: list[ResultRecord],
                     results: list[ResultRecord]) -> None:
        if results and self.store is not None:
            await self.store.store(results)
        if not acks:
            return
        if self.writes_results_with_ack:
            refused = await self.broker.ack(acks, ack_results)
        else:
            if ack_results and self.store is not None:
                await self.store.store(ack_results)
            refused = await self.broker.ack(acks)
        for delivery in acks:
            self.keeper.drop(delivery.task_id)
        for task_id in refused:
            logger.warning(
                "ack of task %s refused: its lease was taken over by another worker (this one "
                "was frozen or cut off), so that worker's run counts and this result is dropped",
                task_id,
            )


def _encodable(records: list[ResultRecord]) -> list[ResultRecord]:
    """``records`` with any that cannot be encoded replaced by a FAILURE saying why.

    Records are built to encode (``outcome_record`` checks them); this runs only after a
    write failed, as the last guard that keeps one bad record from blocking every later
    ack. Returns ``records`` itself when all of them encode.
    """
    checked = records
    for i, record in enumerate(records):
        try:
            encode_record(record)
        except Exception as exc:
            if checked is records:
                checked = list(records)
            reason = f"the result of this task could not be stored: {safe_text(repr(exc))}"
            logger.error("task %s: %s", safe_text(record.task_id), reason)
            checked[i] = ResultRecord(
                task_id=safe_text(record.task_id), state=FAILURE,
                exc_type="celeriac.exceptions.SerializationError", exc_message=reason,
                date_done_ms=record.date_done_ms, name=record.name and safe_text(record.name),
                retries=record.retries, fencing_token=record.fencing_token,
            )
    return checked
