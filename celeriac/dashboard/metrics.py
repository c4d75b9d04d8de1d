"""``/metrics``: Prometheus's text format, from the same reads the pages make.

One ``CollectorRegistry`` per dashboard holding one collector. A scrape first awaits the
reads (``QueueAdmin.queue_stats`` through ``ops``: per queue its queued, scheduled and
leased counts, the age of its oldest queued message, its dead letters and its lease
counters; the workers from the monitor's events; the task counters and the runtime and
wait histograms from the per-minute aggregates the monitor reads), then lets
prometheus_client write them out: nothing is collected between scrapes except what the
monitor reads anyway.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from ..stats import StatsRow
from .monitor import RUNTIME_BUCKETS
from .reads import Dashboard

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OUTCOMES = ("succeeded", "failed", "retried", "revoked")  # StatsRow counts, the outcome label's values


def _histogram(family: HistogramMetricFamily, name: str, buckets: list[int], total: float) -> None:
    cumulative, points = 0, []
    for bound, count in zip([*map(str, RUNTIME_BUCKETS), "+Inf"], buckets, strict=True):
        cumulative += count
        points.append((bound, cumulative))
    family.add_metric([name], points, total)


class DashboardCollector(Collector):
    def __init__(self) -> None:
        self.snapshot: dict[str, Any] = {}

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot
        if not snap:
            return
        queues = sorted(snap["queues"].values(), key=lambda q: q.queue)
        now = snap["now"]

        def per_queue(family: GaugeMetricFamily | CounterMetricFamily, value: Any) -> Metric:
            for q in queues:
                family.add_metric([q.queue], value(q))
            return family

        yield per_queue(GaugeMetricFamily("celeriac_queue_waiting_messages", "Messages waiting in a queue "
                                          "(queued plus scheduled for later).", labels=["queue"]),
                        lambda q: q.queued + q.scheduled)
        yield per_queue(GaugeMetricFamily("celeriac_queue_queued_messages", "Messages that can be handed out "
                                          "now (due).", labels=["queue"]), lambda q: q.queued)
        yield per_queue(GaugeMetricFamily("celeriac_queue_scheduled_messages", "Messages waiting for their eta "
                                          "(countdown, retry back-off).", labels=["queue"]), lambda q: q.scheduled)
        yield per_queue(GaugeMetricFamily("celeriac_queue_leased_messages", "Messages reserved by a worker "
                                          "under a lease (running or about to).", labels=["queue"]),
                        lambda q: q.leased)
        yield per_queue(GaugeMetricFamily("celeriac_queue_oldest_message_age_seconds", "How long the oldest "
                                          "queued message has waited since it became due (0: none queued).",
                                          labels=["queue"]),
                        lambda q: 0.0 if q.oldest_queued_ms is None else max(now - q.oldest_queued_ms / 1000, 0.0))
        yield per_queue(CounterMetricFamily("celeriac_lease_expirations", "Leases that ran out (the worker "
                                            "died, froze or lost the broker), found by a reserve.",
                                            labels=["queue"]), lambda q: q.lease_expirations)
        yield per_queue(CounterMetricFamily("celeriac_lease_reclaims", "Messages whose lease ran out put back "
                                            "on their queue (the others went to the dead letters past "
                                            "max_deliveries).", labels=["queue"]), lambda q: q.lease_reclaims)
        yield per_queue(GaugeMetricFamily("celeriac_dead_letters", "Messages in the dead-letter queue, by the "
                                          "queue they came from.", labels=["queue"]), lambda q: q.dead_letters)
        states = GaugeMetricFamily("celeriac_workers", "Workers by state: online, lost (no heartbeat for three "
                                   "periods) or offline (stopped cleanly).", labels=["state"])
        for state in ("online", "lost", "offline"):
            states.add_metric([state], snap["worker_states"].get(state, 0))
        yield states
        age = GaugeMetricFamily("celeriac_worker_heartbeat_age_seconds",
                                "Seconds since each worker's newest heartbeat.", labels=["worker"])
        held = GaugeMetricFamily("celeriac_worker_tasks_in_flight",
                                 "Tasks a worker holds under a lease now (its newest heartbeat).", labels=["worker"])
        processed = CounterMetricFamily("celeriac_worker_tasks_processed",
                                        "Tasks a worker has finished since it started (its own count).",
                                        labels=["worker"])
        for worker in snap["workers"]:
            age.add_metric([worker["hostname"]], worker["age"])
            held.add_metric([worker["hostname"]], worker["held"])
            if worker["processed"] is not None:
                processed.add_metric([worker["hostname"]], worker["processed"])
        yield age
        yield held
        yield processed
        yield GaugeMetricFamily("celeriac_tasks_in_flight", "Tasks held by online workers now.",
                                value=snap["in_flight"])
        totals: list[StatsRow] = [snap["totals"][name] for name in sorted(snap["totals"])]
        started = CounterMetricFamily("celeriac_tasks_started", "Tasks started, by task name, since the minute "
                                      "the dashboard started (the workers' per-minute aggregates).", labels=["name"])
        tasks = CounterMetricFamily("celeriac_tasks", "Task outcomes by task name and outcome, since the minute the "
                                    "dashboard started (the workers' per-minute aggregates; a rejected task counts "
                                    "as failed).", labels=["name", "outcome"])
        runtime = HistogramMetricFamily("celeriac_task_runtime_seconds", "Task runtimes since the minute the "
                                        "dashboard started.", labels=["name"])
        wait = HistogramMetricFamily("celeriac_task_wait_seconds", "Waits from enqueue (or eta) to start, since "
                                     "the minute the dashboard started.", labels=["name"])
        for row in totals:
            started.add_metric([row.name], row.started)
            for outcome in OUTCOMES:
                tasks.add_metric([row.name, outcome], getattr(row, outcome))
            _histogram(runtime, row.name, row.runtime_buckets, row.runtime_sum_s)
            _histogram(wait, row.name, row.wait_buckets, row.wait_sum_s)
        yield started
        yield tasks
        yield runtime
        yield wait
        yield GaugeMetricFamily("celeriac_event_log_up", "1 when the dashboard's last read of the event log worked.",
                                value=0 if snap["error"] else 1)
        yield GaugeMetricFamily("celeriac_aggregates_up", "1 when the dashboard's last read of the per-minute "
                                "aggregates worked.", value=0 if snap["stats_error"] else 1)


class Metrics:
    def __init__(self, dash: Dashboard) -> None:
        self.dash = dash
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = DashboardCollector()
        self.registry.register(self.collector)
        self._lock = asyncio.Lock()

    async def render(self) -> bytes:
        dash, monitor = self.dash, self.dash.monitor
        queues = await dash.queue_stats()
        now = time.time()
        workers, states = [], Counter[str]()
        for host, event in monitor.workers.items():
            state = monitor.worker_state(event, now)
            states[state] += 1
            if state != "offline":
                workers.append({"hostname": host, "age": now - event.ts, "held": len(event.held or []),
                                "processed": event.processed})
        snapshot = {"queues": queues, "now": now, "worker_states": states,
                    "workers": workers, "in_flight": len(monitor.running()), "totals": monitor.totals(),
                    "error": monitor.error, "stats_error": monitor.stats_error}
        async with self._lock:
            self.collector.snapshot = snapshot
            return generate_latest(self.registry)
