"""Per-minute aggregates of task outcomes, kept in the broker beside the event log.

Workers count what their tasks did per (minute, task name, queue): how many started,
succeeded, failed (a ``Reject`` counts as failed), were retried or revoked, and histograms
of runtimes and of waits (enqueue, or eta, to start) in fixed logarithmic buckets. Each
flush of the completion buffer writes its counts in the same server call as its events
(``ControlStore.emit_events(events, stats=...)``), so a busy worker adds no round trip per
task; the server adds them to what other workers wrote for the same minute and keeps about
25 hours of minutes (``KEEP_MINUTES``). The dashboard's charts and ``/metrics`` read these
instead of scanning raw events (``ControlStore.read_stats``).

Servers store a row as named numbers (``StatsRow.items``): the counts by name, the two
sums, and ``runtime:<i>``/``wait:<i>`` for the non-empty buckets, so a server adds rows
with one "add to a number" per item and never parses a histogram.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field

# Upper bounds (seconds) of the runtime and wait buckets; one more bucket holds the rest.
BUCKETS_S: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                                25.0, 60.0, 150.0, 300.0, 600.0, 1800.0, 3600.0)
SLOTS = len(BUCKETS_S) + 1
KEEP_MINUTES = 25 * 60  # minutes older than this (before the newest written) are pruned
COUNTS = ("started", "succeeded", "failed", "retried", "revoked")
RUNTIME, WAIT = "runtime", "wait"
Key = tuple[int, str, str]  # (epoch minute, task name, queue)


def _empty() -> list[int]:
    return [0] * SLOTS


def bucket_of(seconds: float) -> int:
    """The index of the bucket a duration falls in (its upper bound is inclusive)."""
    return bisect.bisect_left(BUCKETS_S, seconds)


@dataclass(slots=True)
class StatsRow:
    """What the tasks of one name on one queue did in one minute (epoch seconds // 60)."""

    minute: int
    name: str
    queue: str
    started: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    revoked: int = 0
    runtime_sum_s: float = 0.0
    wait_sum_s: float = 0.0
    runtime_buckets: list[int] = field(default_factory=_empty)
    wait_buckets: list[int] = field(default_factory=_empty)

    @property
    def key(self) -> Key:
        return (self.minute, self.name, self.queue)

    @property
    def runtime_count(self) -> int:
        return sum(self.runtime_buckets)

    @property
    def wait_count(self) -> int:
        return sum(self.wait_buckets)

    def observe_runtime(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        self.runtime_buckets[bucket_of(seconds)] += 1
        self.runtime_sum_s += seconds

    def observe_wait(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        self.wait_buckets[bucket_of(seconds)] += 1
        self.wait_sum_s += seconds

    def add(self, other: StatsRow) -> None:
        """Add another row's numbers (of any key) to this one's."""
        self.started += other.started
        self.succeeded += other.succeeded
        self.failed += other.failed
        self.retried += other.retried
        self.revoked += other.revoked
        self.runtime_sum_s += other.runtime_sum_s
        self.wait_sum_s += other.wait_sum_s
        for i in range(SLOTS):
            self.runtime_buckets[i] += other.runtime_buckets[i]
            self.wait_buckets[i] += other.wait_buckets[i]

    def items(self) -> list[tuple[str, float]]:
        """The row's non-zero numbers by name, as servers store them."""
        out: list[tuple[str, float]] = [(name, getattr(self, name)) for name in COUNTS if getattr(self, name)]
        if self.runtime_sum_s:
            out.append(("runtime_sum", self.runtime_sum_s))
        if self.wait_sum_s:
            out.append(("wait_sum", self.wait_sum_s))
        out += [(f"{RUNTIME}:{i}", n) for i, n in enumerate(self.runtime_buckets) if n]
        out += [(f"{WAIT}:{i}", n) for i, n in enumerate(self.wait_buckets) if n]
        return out

    def add_item(self, metric: str, value: float) -> None:
        """Add one stored number (see ``items``); an unknown name (a newer writer's) is ignored."""
        if metric in COUNTS:
            setattr(self, metric, getattr(self, metric) + int(value))
        elif metric == "runtime_sum":
            self.runtime_sum_s += value
        elif metric == "wait_sum":
            self.wait_sum_s += value
        else:
            kind, _, index = metric.partition(":")
            if index.isdigit() and int(index) < SLOTS:
                if kind == RUNTIME:
                    self.runtime_buckets[int(index)] += int(value)
                elif kind == WAIT:
                    self.wait_buckets[int(index)] += int(value)


def rows_from_items(items: Iterable[tuple[int, str, str, str, float]]) -> list[StatsRow]:
    """Rows from stored (minute, name, queue, metric, value) items, one per key, in key order."""
    rows: dict[Key, StatsRow] = {}
    for minute, name, queue, metric, value in items:
        key = (int(minute), name, queue)
        row = rows.get(key)
        if row is None:
            row = rows[key] = StatsRow(*key)
        row.add_item(metric, float(value))
    return [rows[key] for key in sorted(rows)]


def merged(rows: Iterable[StatsRow]) -> list[StatsRow]:
    """One row per key, in key order."""
    out: dict[Key, StatsRow] = {}
    for row in rows:
        found = out.get(row.key)
        if found is None:
            found = out[row.key] = StatsRow(*row.key)
        found.add(row)
    return [out[key] for key in sorted(out)]


def quantile(q: float, buckets: list[int]) -> float | None:
    """The ``q`` quantile of a histogram, linear within a bucket (as Prometheus's
    ``histogram_quantile``); None when it is empty. The last bucket reads as its lower bound."""
    total = sum(buckets)
    if not total:
        return None
    rank, seen = q * total, 0
    for i, count in enumerate(buckets):
        if count and seen + count >= rank:
            lower = BUCKETS_S[i - 1] if i > 0 else 0.0
            if i >= len(BUCKETS_S):
                return lower
            return lower + (BUCKETS_S[i] - lower) * (rank - seen) / count
        seen += count
    return BUCKETS_S[-1]


class StatsBatch:
    """A worker's counts since its last flush, one row per key (``CompletionBuffer``)."""

    __slots__ = ("rows",)

    def __init__(self) -> None:
        self.rows: dict[Key, StatsRow] = {}

    def __bool__(self) -> bool:
        return bool(self.rows)

    def row(self, ts: float, name: str, queue: str) -> StatsRow:
        key = (int(ts // 60), name, queue)
        found = self.rows.get(key)
        if found is None:
            found = self.rows[key] = StatsRow(*key)
        return found

    # The two calls a worker makes per task, kept short: they are on its hot path.
    def started(self, ts: float, name: str, queue: str, wait_s: float | None) -> None:
        row = self.row(ts, name, queue)
        row.started += 1
        if wait_s is not None:  # >= 0
            row.wait_buckets[bisect.bisect_left(BUCKETS_S, wait_s)] += 1
            row.wait_sum_s += wait_s

    def finished(self, ts: float, name: str, queue: str, count: str, runtime_s: float) -> None:
        """``count``: one of ``COUNTS``; ``runtime_s`` >= 0."""
        row = self.row(ts, name, queue)
        setattr(row, count, getattr(row, count) + 1)
        row.runtime_buckets[bisect.bisect_left(BUCKETS_S, runtime_s)] += 1
        row.runtime_sum_s += runtime_s

    def take(self) -> list[StatsRow]:
        rows, self.rows = list(self.rows.values()), {}
        return rows

    def put_back(self, rows: Iterable[StatsRow]) -> None:
        for row in rows:
            self.row(row.minute * 60, row.name, row.queue).add(row)
