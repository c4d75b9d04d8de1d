"""``memory://``: broker and result store inside one process.

For users' tests and eager set-ups. State is shared by every app and every event loop in
the process that names the same ``memory://name``; a lock guards it because the sync
bridge and the worker run on different threads.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlparse

from ..._notify import Notifier, wait_for_notice
from ...exceptions import DuplicateTaskError
from ...message import DeadLetter, Delivery, ResultRecord, now_ms
from ...stats import KEEP_MINUTES, StatsRow, merged
from ..contracts import (
    SKIPPED_NOT_FOUND,
    SKIPPED_PENDING,
    BrokerOptions,
    OutgoingMessage,
    QueueStats,
    RequeueOutcome,
    lost_record,
    max_deliveries_reason,
)

SCHEDULED, QUEUED, RESERVED = "scheduled", "queued", "reserved"
MESSAGES = "messages"


@dataclass(slots=True)
class _Message:
    task_id: str
    queue: str
    body: bytes
    priority: int
    eta_ms: int
    state: str
    seq: int
    delivery_count: int = 0
    expired_count: int = 0  # leases run out since the last retry (see max_deliveries)
    lease_expires_at_ms: int = 0


@dataclass
class MemoryState:
    """Everything one ``memory://name`` holds: messages and results."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    messages: dict[str, _Message] = field(default_factory=dict)
    ready: dict[str, list[tuple[int, int, str]]] = field(default_factory=dict)
    scheduled: list[tuple[int, int, str]] = field(default_factory=list)
    leases: list[tuple[int, int, str]] = field(default_factory=list)
    revoked: dict[str, tuple[float, bool]] = field(default_factory=dict)
    dead: dict[int, DeadLetter] = field(default_factory=dict)  # by a sequence number: oldest first
    unique_ids: dict[str, int] = field(default_factory=dict)  # id -> remembered until (ms, a broker's clock)
    events: deque[tuple[int, bytes]] = field(default_factory=deque)
    control: deque[tuple[int, bytes]] = field(default_factory=deque)
    stats: dict[tuple[int, str, str], StatsRow] = field(default_factory=dict)
    lease_counters: dict[str, list[int]] = field(default_factory=dict)  # queue -> [expired, reclaimed]
    stats_pruned_at: int = 0  # the minute of the last pruning of ``stats``
    buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # key -> (tokens, at_s)
    results: dict[str, tuple[ResultRecord, float | None]] = field(default_factory=dict)
    groups: dict[str, set[str]] = field(default_factory=dict)
    saved_groups: dict[str, list[str]] = field(default_factory=dict)
    notifier: Notifier = field(default_factory=Notifier)  # "messages" and "result:<id>"
    seq: itertools.count[int] = field(default_factory=itertools.count)


_states: dict[str, MemoryState] = {}
_states_lock = threading.Lock()


def state_for(url: str) -> MemoryState:
    name = urlparse(url).netloc or "default"
    with _states_lock:
        return _states.setdefault(name, MemoryState())


class MemoryBroker:
    """The in-process broker; passes the same contract suite as the servers."""

    def __init__(self, url: str, options: BrokerOptions | None = None) -> None:
        self.url = url
        self.options = options or BrokerOptions()
        self.state = state_for(url)
        # This broker's clock, for leases, etas, unique ids and rate buckets (skew_clock
        # moves it on in tests); results and revoked ids expire by the wall clock.
        self.clock_ms: Callable[[], int] = now_ms
        self._skew_ms = 0

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def skew_clock(self, ms: int) -> None:
        self._skew_ms += ms
        skew = self._skew_ms
        self.clock_ms = lambda: now_ms() + skew

    # --- publishing -------------------------------------------------------------------

    async def publish(self, messages: Sequence[OutgoingMessage], *, on_duplicate: str = "error") -> None:
        st = self.state
        now = self.clock_ms()
        with st.lock:
            fresh: list[OutgoingMessage] = []
            fresh_ids: set[str] = set()
            for msg in messages:
                if (msg.task_id in st.messages or st.unique_ids.get(msg.task_id, 0) > now
                        or msg.task_id in fresh_ids):
                    if on_duplicate == "ignore":
                        continue
                    raise DuplicateTaskError.pending(msg.task_id)
                fresh.append(msg)
                fresh_ids.add(msg.task_id)
            for msg in fresh:
                if msg.unique_for_s:
                    st.unique_ids[msg.task_id] = now + int(msg.unique_for_s * 1000)
                eta = msg.eta_ms if msg.eta_ms is not None else now
                self._put(_Message(msg.task_id, msg.queue, msg.body, msg.priority, eta, QUEUED,
                                   next(st.seq)), now)
            if fresh:
                st.notifier.notify(MESSAGES)

    def _put(self, m: _Message, now: int) -> None:
        st = self.state
        st.messages[m.task_id] = m
        if m.eta_ms > now:
            m.state = SCHEDULED
            heapq.heappush(st.scheduled, (m.eta_ms, m.seq, m.task_id))
        else:
            m.state = QUEUED
            heapq.heappush(st.ready.setdefault(m.queue, []), (-m.priority, m.seq, m.task_id))

    # --- reserving ------------------------------------------------------------------

    async def reserve(
        self, queues: Sequence[str], max_count: int, *, lease_ms: int, worker_id: str, timeout_s: float
    ) -> list[Delivery]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        notifier = self.state.notifier
        while True:
            fut = notifier.subscribe(MESSAGES)
            try:
                with self.state.lock:
                    taken, next_event_ms = self._take(queues, max_count, lease_ms)
                remaining = deadline - loop.time()
                if taken or remaining <= 0:
                    return taken
                wait_s = remaining
                if next_event_ms is not None:
                    wait_s = min(wait_s, max(next_event_ms - self.clock_ms(), 1) / 1000)
                await wait_for_notice(fut, wait_s)
            finally:
                notifier.unsubscribe(MESSAGES, fut)

    def _take(self, queues: Sequence[str], max_count: int, lease_ms: int) -> tuple[list[Delivery], int | None]:
        st = self.state
        now = self.clock_ms()
        self._reclaim_expired(now)
        while st.scheduled and st.scheduled[0][0] <= now:
            _, seq, task_id = heapq.heappop(st.scheduled)
            m = st.messages.get(task_id)
            if m is not None and m.seq == seq and m.state == SCHEDULED:
                m.state = QUEUED
                heapq.heappush(st.ready.setdefault(m.queue, []), (-m.priority, m.seq, task_id))
        taken: list[Delivery] = []
        while len(taken) < max_count:
            best: tuple[int, int, str] | None = None
            best_queue = ""
            for queue in queues:
                heap = st.ready.get(queue)
                while heap:
                    head = heap[0]
                    m = st.messages.get(head[2])
                    if m is not None and m.seq == head[1] and m.state == QUEUED:
                        break
                    heapq.heappop(heap)  # stale entry: acked, moved or re-queued since
                if heap and (best is None or heap[0] < best):
                    best, best_queue = heap[0], queue
            if best is None:
                break
            heapq.heappop(st.ready[best_queue])
            m = st.messages[best[2]]
            m.state = RESERVED
            m.delivery_count += 1
            m.lease_expires_at_ms = now + lease_ms
            heapq.heappush(st.leases, (m.lease_expires_at_ms, m.delivery_count, m.task_id))
            taken.append(Delivery(m.task_id, m.queue, m.body, m.delivery_count, m.lease_expires_at_ms))
        next_events = [h[0][0] for h in (st.scheduled, st.leases) if h]
        return taken, min(next_events) if next_events else None

    def _reclaim_expired(self, now: int) -> None:
        st = self.state
        while st.leases and st.leases[0][0] <= now:
            _, token, task_id = heapq.heappop(st.leases)
            m = st.messages.get(task_id)
            if m is None or m.state != RESERVED or m.delivery_count != token:
                continue
            if m.lease_expires_at_ms > now:  # renewed: its fresh heap entry is further on
                continue
            m.expired_count += 1
            counters = st.lease_counters.setdefault(m.queue, [0, 0])
            counters[0] += 1
            if m.expired_count >= self.options.max_deliveries:
                reason = max_deliveries_reason(m.expired_count, self.options.max_deliveries)
                self._kill(m, reason, now)
                from .results import write_records  # results.py imports this module

                write_records(st, [lost_record(m.task_id, reason, m.delivery_count)], self.options.result_expires_s)
                continue
            counters[1] += 1
            m.seq = next(st.seq)
            m.eta_ms = now
            self._put(m, now)

    def _kill(self, m: _Message, reason: str, now: int) -> None:
        self.state.messages.pop(m.task_id, None)
        self.state.dead[next(self.state.seq)] = DeadLetter(m.task_id, m.queue, m.body, reason, now, m.delivery_count,
                                                m.priority)

    def _held(self, d: Delivery) -> _Message | None:
        m = self.state.messages.get(d.task_id)
        if m is None or m.state != RESERVED or m.delivery_count != d.fencing_token:
            return None
        return m

    # --- finishing ------------------------------------------------------------------

    async def renew(self, deliveries: Sequence[Delivery], lease_ms: int) -> list[str]:
        lost = []
        with self.state.lock:
            now = self.clock_ms()
            for d in deliveries:
                m = self._held(d)
                if m is None:
                    lost.append(d.task_id)
                    continue
                m.lease_expires_at_ms = now + lease_ms
                d.lease_expires_at_ms = m.lease_expires_at_ms
                heapq.heappush(self.state.leases, (m.lease_expires_at_ms, m.delivery_count, m.task_id))
        return lost

    async def ack(self, deliveries: Sequence[Delivery], results: Sequence[ResultRecord] = ()) -> list[str]:
        refused = []
        with self.state.lock:
            for d in deliveries:
                if self._held(d) is None:
                    refused.append(d.task_id)
                else:
                    del self.state.messages[d.task_id]
            if results:
                from .results import write_records  # results.py imports this module

                kept = [r for r in results if r.task_id not in refused]
                write_records(self.state, kept, self.options.result_expires_s)
        return refused

    async def release(self, deliveries: Sequence[Delivery]) -> list[str]:
        refused = []
        with self.state.lock:
            now = self.clock_ms()
            for d in deliveries:
                m = self._held(d)
                if m is None:
                    refused.append(d.task_id)
                    continue
                m.seq = -next(self.state.seq)  # negative: ahead of everything of its priority
                m.eta_ms = now
                self._put(m, now)
            self.state.notifier.notify(MESSAGES)
        return refused

    async def retry(self, delivery: Delivery, body: bytes, eta_ms: int | None) -> bool:
        with self.state.lock:
            m = self._held(delivery)
            if m is None:
                return False
            now = self.clock_ms()
            m.body, m.seq, m.expired_count = body, next(self.state.seq), 0
            m.eta_ms = eta_ms if eta_ms is not None else now
            self._put(m, now)
            self.state.notifier.notify(MESSAGES)
        return True

    async def dead_letter(self, delivery: Delivery, reason: str) -> bool:
        with self.state.lock:
            m = self._held(delivery)
            if m is None:
                return False
            self._kill(m, reason, self.clock_ms())
        return True

    # --- revoking and the dead-letter queue ------------------------------------------

    async def revoke(self, task_ids: Sequence[str], *, terminate: bool = False) -> None:
        until = time.time() + self.options.revoked_ttl_s
        with self.state.lock:
            for task_id in task_ids:
                self.state.revoked[task_id] = (until, terminate)

    async def revoked_among(self, task_ids: Sequence[str]) -> dict[str, bool]:
        now = time.time()
        found = {}
        with self.state.lock:
            for task_id in task_ids:
                entry = self.state.revoked.get(task_id)
                if entry is not None and entry[0] > now:
                    found[task_id] = entry[1]
        return found

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        with self.state.lock:
            return list(self.state.dead.values())[:limit]

    async def requeue_dead_letters(self, task_ids: Sequence[str] | None = None) -> RequeueOutcome:
        outcome = RequeueOutcome()
        with self.state.lock:
            st = self.state
            newest = {dl.task_id: key for key, dl in st.dead.items()}  # later entries win: the newest
            now = self.clock_ms()
            for task_id in newest if task_ids is None else dict.fromkeys(task_ids):
                key = newest.get(task_id)
                if key is None:
                    outcome.skipped[task_id] = SKIPPED_NOT_FOUND
                elif task_id in st.messages:
                    outcome.skipped[task_id] = SKIPPED_PENDING
                else:
                    dl = st.dead.pop(key)
                    self._put(_Message(task_id, dl.queue, dl.body, dl.priority, now, QUEUED, next(st.seq),
                                       delivery_count=dl.delivery_count), now)
                    outcome.requeued.append(task_id)
            if outcome.requeued:
                st.notifier.notify(MESSAGES)
        return outcome

    async def purge_dead_letters(self) -> int:
        with self.state.lock:
            count = len(self.state.dead)
            self.state.dead.clear()
            return count

    async def purge(self, queue: str) -> int:
        with self.state.lock:
            doomed = [m.task_id for m in self.state.messages.values()
                      if m.queue == queue and m.state in (QUEUED, SCHEDULED)]
            for task_id in doomed:
                del self.state.messages[task_id]
            return len(doomed)

    async def take_rate_token(self, key: str, rate_per_s: float, capacity: float) -> float:
        with self.state.lock:
            now = self.clock_ms() / 1000
            tokens, at = self.state.buckets.get(key, (capacity, now))
            tokens = min(capacity, tokens + (now - at) * rate_per_s)
            if tokens >= 1:
                self.state.buckets[key] = (tokens - 1, now)
                return 0.0
            self.state.buckets[key] = (tokens, now)
            return (1 - tokens) / rate_per_s

    async def emit_events(self, events: Sequence[bytes], stats: Sequence[StatsRow] = ()) -> None:
        with self.state.lock:
            self._append(self.state.events, events, self.options.events_max)
            if stats:
                self._add_stats(stats)

    async def read_events(self, after: str | None = None, limit: int = 1000) -> list[tuple[str, bytes]]:
        return self._read(self.state.events, after, limit)

    async def emit_control(self, records: Sequence[bytes]) -> None:
        with self.state.lock:
            self._append(self.state.control, records, self.options.control_max)

    async def read_control(self, after: str | None = None, limit: int = 100) -> list[tuple[str, bytes]]:
        return self._read(self.state.control, after, limit)

    def _append(self, log: deque[tuple[int, bytes]], records: Sequence[bytes], cap: int) -> None:
        for raw in records:
            log.append((next(self.state.seq), raw))
        while len(log) > cap:
            log.popleft()

    def _read(self, log: deque[tuple[int, bytes]], after: str | None, limit: int) -> list[tuple[str, bytes]]:
        with self.state.lock:
            entries = list(log)
        if after is None:
            chosen = entries[-limit:] if limit > 0 else []
        else:
            start = bisect.bisect_right([entry_id for entry_id, _ in entries], int(after))
            chosen = entries[start : start + limit]
        return [(str(entry_id), raw) for entry_id, raw in chosen]

    async def record_stats(self, rows: Sequence[StatsRow]) -> None:
        with self.state.lock:
            self._add_stats(rows)

    def _add_stats(self, rows: Sequence[StatsRow]) -> None:
        kept = self.state.stats
        for row in rows:
            found = kept.get(row.key)
            if found is None:
                found = kept[row.key] = StatsRow(*row.key)
            found.add(row)
        minute = self.clock_ms() // 60_000
        if minute != self.state.stats_pruned_at:  # once a minute
            self.state.stats_pruned_at = minute
            for key in [k for k in kept if k[0] < minute - KEEP_MINUTES]:
                del kept[key]

    async def read_stats(self, since_minute: int, until_minute: int) -> list[StatsRow]:
        with self.state.lock:
            chosen = [row for key, row in self.state.stats.items() if since_minute <= key[0] <= until_minute]
            return merged(chosen)  # copies, in key order

    async def queue_depths(self) -> dict[str, int]:
        depths: dict[str, int] = {}
        with self.state.lock:
            for m in self.state.messages.values():
                if m.state in (QUEUED, SCHEDULED):
                    depths[m.queue] = depths.get(m.queue, 0) + 1
        return depths

    async def queue_stats(self) -> dict[str, QueueStats]:
        found: dict[str, QueueStats] = {}

        def of(queue: str) -> QueueStats:
            stats = found.get(queue)
            if stats is None:
                stats = found[queue] = QueueStats(queue)
            return stats

        with self.state.lock:
            now = self.clock_ms()
            for m in self.state.messages.values():
                stats = of(m.queue)
                if m.state == RESERVED:
                    stats.leased += 1
                elif m.eta_ms > now:
                    stats.scheduled += 1
                else:
                    stats.queued += 1
                    if m.seq >= 0 and (stats.oldest_queued_ms is None or m.eta_ms < stats.oldest_queued_ms):
                        stats.oldest_queued_ms = m.eta_ms  # released ones (seq < 0) are left out
            for dl in self.state.dead.values():
                of(dl.queue).dead_letters += 1
            for queue, (expired, reclaimed) in self.state.lease_counters.items():
                stats = of(queue)
                stats.lease_expirations, stats.lease_reclaims = expired, reclaimed
        return found

    async def dead_letter_count(self) -> int:
        with self.state.lock:
            return len(self.state.dead)
