"""The dashboard's follower of the event log and reader of the aggregates: what it folds, what it
counts, and that it stays bounded."""

from __future__ import annotations

import time
import uuid

from celeriac import Celery
from celeriac.dashboard.monitor import FROZEN_AFTER_MIN, RUNTIME_BUCKETS, Monitor
from celeriac.events import (
    TASK_FAILED,
    TASK_RECEIVED,
    TASK_STARTED,
    TASK_SUCCEEDED,
    WORKER_HEARTBEAT,
    WORKER_OFFLINE,
    Event,
)
from celeriac.stats import RUNTIME, WAIT, StatsRow


def monitor(**options: object) -> Monitor:
    app = Celery("m", broker="memory://monitor-unit")
    app.conf.worker_heartbeat_seconds = 2.0
    return Monitor(app, **options)  # type: ignore[arg-type]


def outcome(kind: str, task_id: str, ts: float, runtime: float = 0.01, name: str = "add") -> Event:
    return Event(type=kind, ts=ts, hostname="w1", task_id=task_id, name=name, queue="celery", runtime_s=runtime)


def test_a_worker_without_heartbeats_for_three_periods_is_lost_and_one_that_said_goodbye_offline() -> None:
    m = monitor()
    now = time.time()
    m.fold(Event(type=WORKER_HEARTBEAT, ts=now - 1, hostname="fresh", held=["a", "b"]))
    m.fold(Event(type=WORKER_HEARTBEAT, ts=now - 7, hostname="silent", held=["c"]))
    m.fold(Event(type=WORKER_HEARTBEAT, ts=now - 1, hostname="gone", held=["d"]))
    m.fold(Event(type=WORKER_OFFLINE, ts=now, hostname="gone"))
    states = {host: m.worker_state(event, now) for host, event in m.workers.items()}
    assert states == {"fresh": "online", "silent": "lost", "gone": "offline"}
    assert set(m.running()) == {"a", "b"}  # only an online worker's tasks count as running


def test_held_since_is_the_first_heartbeat_that_listed_the_task() -> None:
    m = monitor()
    now = time.time()
    m.fold(Event(type=WORKER_HEARTBEAT, ts=now - 1.5, hostname="w", held=["a"]))
    m.fold(Event(type=WORKER_HEARTBEAT, ts=now - 0.5, hostname="w", held=["a", "b"]))
    assert m.running() == {"a": ("w", now - 1.5), "b": ("w", now - 0.5)}
    m.fold(Event(type=WORKER_HEARTBEAT, ts=now, hostname="w", held=["b"]))
    assert set(m.running()) == {"b"}


def test_the_task_rows_stay_bounded_and_follow_the_timeline() -> None:
    m = monitor(keep_events=100)
    now = time.time()
    for i in range(500):
        m.fold(outcome(TASK_FAILED if i % 5 == 0 else TASK_SUCCEEDED, f"t{i}", now))
    assert len(m.tasks) == 100 and len(m.task_events) == 100
    m.fold(Event(type=TASK_RECEIVED, ts=now, hostname="w1", task_id="new", name="add", queue="celery"))
    assert (m.tasks["new"].state, m.tasks["new"].worker) == ("RECEIVED", "w1")
    m.fold(Event(type=TASK_STARTED, ts=now + 1, hostname="w1", task_id="new", name="add", wait_s=0.5))
    assert (m.tasks["new"].state, m.tasks["new"].started_ts, m.tasks["new"].queue) == ("STARTED", now + 1, "celery")


async def stats_monitor(rows: list[StatsRow]) -> Monitor:
    app = Celery("m", broker=f"memory://{uuid.uuid4().hex}")
    await (await app.clients()).control.record_stats(rows)
    return Monitor(app)


async def test_charts_and_percentiles_come_from_the_aggregates() -> None:
    minute = int(time.time() // 60)
    rows = []
    for i in range(100):
        row = StatsRow(minute - (i % 3), "add", "celery", started=1, succeeded=1)
        row.observe_runtime(0.2 if i < 90 else 20.0)
        row.observe_wait(0.004)
        rows.append(row)
    rows.append(StatsRow(minute, "add", "other", failed=2, retried=1))
    rows.append(StatsRow(minute - 120, "add", "celery", succeeded=50))  # out of the hour
    m = await stats_monitor(rows)
    assert await m.poll_stats()
    assert sum(m.series()[TASK_SUCCEEDED]) == 100 and m.series()[TASK_FAILED][-1] == 2
    assert m.hour_counts()[TASK_SUCCEEDED] == 100 and m.hour_counts()[TASK_STARTED] == 100
    p = m.percentiles(RUNTIME)
    assert p["p50"] is not None and 0.1 < p["p50"] <= 0.25
    assert p["p99"] is not None and 10.0 < p["p99"] <= 30.0
    w = m.percentiles(WAIT)
    assert w["p50"] is not None and 0.0025 < w["p50"] <= 0.005
    assert len(m.percentile_series(WAIT, 0.95)) == 60 and m.percentile_series(WAIT, 0.95)[-1] is not None
    assert m.per_queue()["other"] == {"succeeded": 0, "failed": 2, "recent": 2}
    assert len(RUNTIME_BUCKETS) + 1 == len(m.stats[0].runtime_buckets)
    empty = await stats_monitor([])
    await empty.poll_stats()
    assert empty.percentiles(RUNTIME) == {"p50": None, "p95": None, "p99": None}


async def test_counters_start_at_the_dashboards_minute_and_only_grow() -> None:
    now = time.time()
    minute = int(now // 60)
    m = await stats_monitor([StatsRow(minute - 1, "add", "celery", succeeded=7)])  # before it started
    control = (await m.app.clients()).control
    await control.record_stats([StatsRow(minute, "add", "celery", succeeded=2)])
    await m.poll_stats(now)
    assert m.totals()["add"].succeeded == 2
    seen = []
    for later in range(1, 8):  # minutes pass: each is frozen FROZEN_AFTER_MIN after it, and stays counted
        await control.record_stats([StatsRow(minute + later, "add", "celery", succeeded=1)])
        await m.poll_stats(now + later * 60)
        seen.append(m.totals()["add"].succeeded)
    assert seen == sorted(seen) and seen[-1] == 2 + 7
    assert m.frozen["add"].succeeded == 2 + 7 - FROZEN_AFTER_MIN


def test_a_minute_alone_between_empty_ones_is_drawn_as_a_dot() -> None:
    from celeriac.dashboard.pages import lines_svg

    drawn = str(lines_svg({"p50": [None, 0.01, None, 0.02, 0.03], "p95": [None] * 5}))
    assert drawn.count("<circle") == 1 and 'class="p50"' in drawn  # the lone minute
    assert drawn.count("<path") == 1  # the two neighbouring minutes: one line; p95 has none
