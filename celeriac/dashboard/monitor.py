"""The dashboard's follower of the event log and reader of the per-minute aggregates.

One task per dashboard, once a second, reads the events newer than the last one it saw
(``ops.read_events``) and folds them into bounded structures: the recent task events (for
the task list and each task's timeline: sent, received, started, finished) and the newest
event of every worker. At start it reads the newest events the log still holds, so the
task list is not empty after a restart.

The numbers come from the per-minute aggregates the workers keep in the broker
(``celeriac/stats.py``, ``ops.read_stats``), read for the last hour at each poll: the
overview's throughput, wait and runtime charts, the queues' hourly counts, and the
Prometheus counters and histograms of ``/metrics``. Those count the tasks of the minutes
from the one the dashboard started in: each minute is added to them for good once it is
``FROZEN_AFTER_MIN`` old (what is newer is added as it stands), so they only grow, and
they start from zero after a restart as any counter does. Nothing scans raw events to
count, so the charts cost the same at any rate of tasks and survive the event log's cap.

Everything here is bounded: a dashboard left running for days holds at most
``keep_events`` task events, ``keep_events`` task rows, an hour of aggregate rows and one
total per task name, whatever the rate of tasks.
Events are a view for people; the task page asks the result store for the truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import ops
from ..events import (
    TASK_FAILED,
    TASK_RECEIVED,
    TASK_REJECTED,
    TASK_RETRIED,
    TASK_REVOKED,
    TASK_SENT,
    TASK_STARTED,
    TASK_SUCCEEDED,
    WORKER_HEARTBEAT,
    WORKER_OFFLINE,
    WORKER_ONLINE,
    Event,
    decode_event,
)
from ..stats import BUCKETS_S, RUNTIME, WAIT, StatsRow, quantile

if TYPE_CHECKING:
    from ..app import Celery

logger = logging.getLogger("celeriac.dashboard")

TASK_SENT_HERE = TASK_SENT  # also noted by the dashboard for what it sent itself (retry, run now)
STATE_OF = {TASK_SENT: "PENDING", TASK_RECEIVED: "RECEIVED", TASK_STARTED: "STARTED", TASK_SUCCEEDED: "SUCCESS",
            TASK_FAILED: "FAILURE", TASK_RETRIED: "RETRY", TASK_REVOKED: "REVOKED", TASK_REJECTED: "REJECTED"}
OUTCOMES = (TASK_SUCCEEDED, TASK_FAILED, TASK_RETRIED, TASK_REVOKED, TASK_REJECTED)
WINDOW_S = 3600
WINDOW_MIN = 60  # the charts' minutes, the current one included
FROZEN_AFTER_MIN = 5  # a minute this old is added to the counters for good (later writes to it are not seen)
# The buckets of the runtime and wait histograms (/metrics), in seconds: the aggregates'.
RUNTIME_BUCKETS = BUCKETS_S
# The chart series of each count, by the event type that names it (the bars' CSS classes).
COUNT_OF = {TASK_SUCCEEDED: "succeeded", TASK_FAILED: "failed", TASK_RETRIED: "retried", TASK_REVOKED: "revoked",
            TASK_STARTED: "started"}


@dataclass
class TaskRow:
    """What the events say about one task id: its newest outcome."""

    task_id: str
    name: str | None
    state: str
    queue: str | None
    worker: str | None
    ts: float  # when its newest event happened
    started_ts: float | None = None
    runtime_s: float | None = None
    retries: int = 0
    exception: str | None = None
    result: str | None = None


class Monitor:
    """Follows one app's event log from the event loop the dashboard runs on."""

    def __init__(self, app: Celery, *, poll_s: float = 1.0, keep_events: int = 20_000) -> None:
        self.app = app
        self.poll_s = poll_s
        self.keep_events = keep_events
        self.task_events: deque[Event] = deque(maxlen=keep_events)
        self.tasks: OrderedDict[str, TaskRow] = OrderedDict()
        self.workers: dict[str, Event] = {}  # hostname -> its newest worker event
        self.held_since: dict[tuple[str, str], float] = {}  # (worker, task id) -> first heartbeat holding it
        self.stats: list[StatsRow] = []  # the aggregates of the last WINDOW_MIN minutes (ops.read_stats)
        self.stats_error: str | None = None  # why the last read of the aggregates failed, while it fails
        self.start_minute = int(time.time() // 60)  # the counters count tasks from this minute on
        self.frozen: dict[str, StatsRow] = {}  # task name -> its counts of the minutes added for good
        self._frozen_through = self.start_minute - 1  # the newest minute added to ``frozen``
        self.last_id: str | None = None
        self.version = 0  # +1 whenever an event arrives
        self.error: str | None = None  # why the last read failed, while it fails
        self.started_at = time.time()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Event | None = None

    # --- running ---------------------------------------------------------------------

    async def start(self) -> None:
        """Start following (once); returns after the first read, so the first page is full."""
        if self._task is None:
            self._ready = asyncio.Event()
            self._task = asyncio.create_task(self._follow(), name="celeriac-dashboard-monitor")
        assert self._ready is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), 10)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _follow(self) -> None:
        assert self._ready is not None
        pause = self.poll_s
        while True:
            try:
                await self.poll()
                if self.error:
                    logger.warning("the event log can be read again")
                self.error, pause = None, self.poll_s
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.error is None:
                    logger.warning("cannot read the event log: %s", exc)
                self.error = f"cannot read the event log: {exc}"
                pause = min(pause * 2, 10.0)
                self._notify()
            self._ready.set()
            await asyncio.sleep(pause)

    async def poll(self) -> int:
        """Read and fold every event newer than the last one seen, then the last hour's
        aggregates; returns how many events."""
        if self.last_id is None:  # the first read, or the log was empty until now: its newest events
            batch = await ops.read_events(self.app, None, max(self.app.settings.events_max, 1))
        else:
            batch = await ops.read_events(self.app, self.last_id, 1000)
        seen = 0
        while batch:
            for _, raw in batch:
                try:
                    event = decode_event(raw)
                except Exception:  # one undecodable record is skipped, not the log
                    continue
                self.fold(event)
            newest_only = self.last_id is None
            seen += len(batch)
            self.last_id = batch[-1][0]
            if newest_only or len(batch) < 1000:
                break
            batch = await ops.read_events(self.app, self.last_id, 1000)
        if await self.poll_stats() or seen:
            self._notify()
        return seen

    async def poll_stats(self, now: float | None = None) -> bool:
        """Read the aggregates of the last hour; True when they changed. A failed read is
        kept in ``stats_error`` (the charts keep their last numbers), never raised."""
        current = int((now or time.time()) // 60)
        try:
            rows = await ops.read_stats(self.app, current - WINDOW_MIN + 1, current)
        except Exception as exc:
            if self.stats_error is None:
                logger.warning("cannot read the per-minute aggregates: %s", exc)
            self.stats_error = f"cannot read the per-minute aggregates: {exc}"
            return False
        self.stats_error = None
        changed = rows != self.stats
        self.stats = rows
        self._freeze(current)
        return changed

    def _freeze(self, current: int) -> None:
        """Add the minutes that just became FROZEN_AFTER_MIN old to the counters, for good."""
        through = current - FROZEN_AFTER_MIN
        for row in self.stats:
            if self._frozen_through < row.minute <= through and row.minute >= self.start_minute:
                self.frozen.setdefault(row.name, StatsRow(0, row.name, "")).add(row)
        self._frozen_through = max(self._frozen_through, through)

    def _notify(self) -> None:
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_change(self, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout_s)

    # --- folding ---------------------------------------------------------------------

    def fold(self, event: Event) -> None:
        if event.type in (WORKER_HEARTBEAT, WORKER_ONLINE, WORKER_OFFLINE):
            self._fold_worker(event)
            return
        if event.task_id is None:
            return
        self.task_events.append(event)
        row = self.tasks.pop(event.task_id, None)
        name = event.name or (row.name if row else None)
        started_ts = event.started_ts or (event.ts if event.type == TASK_STARTED else None)
        self.tasks[event.task_id] = TaskRow(
            task_id=event.task_id, name=name, state=STATE_OF.get(event.type, event.type),
            queue=event.queue or (row.queue if row else None),
            worker=None if event.type == TASK_SENT else event.hostname, ts=event.ts,
            started_ts=started_ts, runtime_s=event.runtime_s, retries=event.retries,
            exception=event.exception, result=event.result)
        while len(self.tasks) > self.keep_events:
            self.tasks.popitem(last=False)

    def note_sent(self, task_id: str, name: str, queue: str | None, why: str) -> None:
        """A task this dashboard sent: listed (PENDING) until its worker's events arrive."""
        self.fold(Event(type=TASK_SENT_HERE, ts=time.time(), hostname="dashboard", task_id=task_id, name=name,
                        queue=queue, result=why))
        self._notify()

    def _fold_worker(self, event: Event) -> None:
        previous = self.workers.get(event.hostname)
        if previous is not None and previous.ts > event.ts:
            return
        self.workers[event.hostname] = event
        held = set(event.held or ()) if event.type != WORKER_OFFLINE else set()
        for key in [k for k in self.held_since if k[0] == event.hostname and k[1] not in held]:
            del self.held_since[key]
        for task_id in held:
            self.held_since.setdefault((event.hostname, task_id), event.ts)

    # --- reads -----------------------------------------------------------------------

    def worker_state(self, event: Event, now: float | None = None) -> str:
        """online, lost (no heartbeat for three periods) or offline (it said goodbye)."""
        if event.type == WORKER_OFFLINE:
            return "offline"
        stale_before = (now or time.time()) - 3 * self.app.settings.worker_heartbeat_seconds
        return "online" if event.ts >= stale_before else "lost"

    def running(self) -> dict[str, tuple[str, float]]:
        """Task ids held by online workers -> (worker, held since)."""
        now = time.time()
        online = {host for host, event in self.workers.items() if self.worker_state(event, now) == "online"}
        return {task_id: (host, since) for (host, task_id), since in self.held_since.items() if host in online}

    def _minutes(self, now: float | None = None) -> tuple[range, dict[int, StatsRow]]:
        """The chart's minutes (oldest first) and, per minute, every task's aggregates added up."""
        current = int((now or time.time()) // 60)
        minutes = range(current - WINDOW_MIN + 1, current + 1)
        by_minute: dict[int, StatsRow] = {}
        for row in self.stats:
            if row.minute in minutes:
                by_minute.setdefault(row.minute, StatsRow(row.minute, "", "")).add(row)
        return minutes, by_minute

    def series(self, now: float | None = None) -> dict[str, list[int]]:
        """Outcomes per minute over the last hour, oldest first (60 points per type), from the aggregates."""
        minutes, by_minute = self._minutes(now)
        empty = StatsRow(0, "", "")
        return {kind: [getattr(by_minute.get(m, empty), COUNT_OF[kind]) for m in minutes]
                for kind in (TASK_SUCCEEDED, TASK_FAILED, TASK_RETRIED)}

    def percentile_series(self, kind: str, q: float, now: float | None = None) -> list[float | None]:
        """The ``q`` quantile of ``kind`` (``stats.RUNTIME`` or ``stats.WAIT``) per minute over the last hour."""
        minutes, by_minute = self._minutes(now)
        attribute = f"{kind}_buckets"
        return [quantile(q, getattr(by_minute[m], attribute)) if m in by_minute else None for m in minutes]

    def hour_counts(self, now: float | None = None) -> Counter[str]:
        """Counts over the last hour by the event type that names them (task-started included)."""
        _, by_minute = self._minutes(now)
        total: Counter[str] = Counter()
        for row in by_minute.values():
            for kind, count in COUNT_OF.items():
                total[kind] += getattr(row, count)
        return total

    def per_queue(self, now: float | None = None) -> dict[str, dict[str, float]]:
        """Per queue: succeeded and failed over the last hour, finished per minute over the last five."""
        current = int((now or time.time()) // 60)
        out: dict[str, dict[str, float]] = {}
        for row in self.stats:
            if row.minute <= current - WINDOW_MIN:
                continue
            found = out.setdefault(row.queue, {"succeeded": 0, "failed": 0, "recent": 0})
            found["succeeded"] += row.succeeded
            found["failed"] += row.failed
            if row.minute > current - 5:
                found["recent"] += row.succeeded + row.failed
        return out

    def totals(self) -> dict[str, StatsRow]:
        """Per task name, its counts and histograms since the dashboard's start minute: the
        frozen minutes plus the newer ones as they stand (Prometheus counters, /metrics)."""
        out = {name: StatsRow(0, name, "") for name in self.frozen}
        for name, row in self.frozen.items():
            out[name].add(row)
        for row in self.stats:
            if row.minute > self._frozen_through and row.minute >= self.start_minute:
                out.setdefault(row.name, StatsRow(0, row.name, "")).add(row)
        return out

    def rate(self, seconds: float = 10.0) -> float:
        """Outcomes per second over the last ``seconds``, from the recent task events."""
        since = time.time() - seconds
        count = 0
        for event in reversed(self.task_events):
            if event.ts < since:
                break
            if event.type in OUTCOMES:
                count += 1
        return count / seconds

    def percentiles(self, kind: str = RUNTIME, now: float | None = None) -> dict[str, float | None]:
        """p50/p95/p99 of the runtimes (or, with ``stats.WAIT``, of the waits from enqueue to
        start) over the last hour, from the aggregates' histograms (linear within a bucket,
        as Prometheus's histogram_quantile)."""
        _, by_minute = self._minutes(now)
        hour = StatsRow(0, "", "")
        for row in by_minute.values():
            hour.add(row)
        buckets = getattr(hour, f"{kind}_buckets")
        return {f"p{round(q * 100)}": quantile(q, buckets) for q in (0.5, 0.95, 0.99)}

    def runtime_percentiles(self) -> dict[str, float | None]:
        return self.percentiles(RUNTIME)

    def wait_percentiles(self) -> dict[str, float | None]:
        return self.percentiles(WAIT)

    def events_of(self, task_id: str) -> list[Event]:
        return [e for e in self.task_events if e.task_id == task_id]

