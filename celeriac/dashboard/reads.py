"""What the dashboard shows and does, once for the pages, the JSON API and /metrics.

Every read and action goes through ``celeriac.ops`` (queue statistics, dead letters,
revoke, the event log, the per-minute aggregates), the role contracts (the result store's
``fetch``/``fetch_many``/``forget``), the app's ``asend_task`` and beat's ``ops``, never a
server's own keys or tables, so it works on every broker. The event log and the aggregates
feed ``Monitor``; ``QueueAdmin.queue_stats`` gives each queue's queued, scheduled and leased
counts, its oldest message's age, its dead letters and its lease counters in one call; the
result store has the last word on a task's state.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from .. import ops
from ..events import (
    TASK_FAILED,
    TASK_RECEIVED,
    TASK_RETRIED,
    TASK_REVOKED,
    TASK_SENT,
    TASK_STARTED,
    TASK_SUCCEEDED,
)
from ..message import FAILURE, READY_STATES, REVOKED, SUCCESS, ResultRecord
from ..serialization import from_wire
from ..servers import hide_password
from ..servers.contracts import QueueStats
from ..stats import RUNTIME, WAIT
from .monitor import Monitor, TaskRow

if TYPE_CHECKING:
    from ..app import Celery

PAGE_SIZE = 50
DEAD_LETTER_SCAN = 10_000  # dead letters read to list and filter them (counts come from queue_stats)
CACHE_S = 1.0  # broker reads shared by every page, SSE stream and scrape within this long
RETRY_OF_HEADER = "celeriac_retry_of"
RETRYABLE = frozenset({FAILURE, REVOKED, SUCCESS, "REJECTED"})
SHOWN_CHARS = 20_000


class ActionRefused(Exception):
    """An action that cannot be done, with the reason for the person who asked."""


@dataclass
class TaskFilter:
    name: str = ""
    state: str = ""
    queue: str = ""
    worker: str = ""
    id_prefix: str = ""
    since: float | None = None  # epoch seconds
    until: float | None = None

    def matches(self, row: TaskRow) -> bool:
        return ((not self.name or self.name.lower() in (row.name or "").lower())
                and (not self.state or row.state == self.state.upper())
                and (not self.queue or row.queue == self.queue)
                and (not self.worker or self.worker.lower() in (row.worker or "").lower())
                and (not self.id_prefix or row.task_id.startswith(self.id_prefix))
                and (self.since is None or row.ts >= self.since)
                and (self.until is None or row.ts <= self.until))

    def query(self) -> dict[str, str]:
        out = {k: v for k, v in (("name", self.name), ("state", self.state), ("queue", self.queue),
                                 ("worker", self.worker), ("id", self.id_prefix)) if v}
        if self.since is not None:
            out["since"] = _iso(self.since)
        if self.until is not None:
            out["until"] = _iso(self.until)
        return out


class _Peek(msgspec.Struct):
    """What a dead letter's body says, read without running any deserializer (never pickle)."""

    task: str = "?"
    args: Any = None
    kwargs: Any = None
    serializer: str = "json"
    retries: int = 0


_peek = msgspec.json.Decoder(_Peek)


def _iso(ts: float | None) -> str:
    if ts is None:
        return ""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def parse_time(text: str | None) -> float | None:
    """An ISO date-time (UTC unless it says otherwise) or epoch seconds; None if empty or unreadable."""
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def shown(value: Any, limit: int = SHOWN_CHARS) -> str:
    """A value as indented JSON for a page, cut at ``limit`` characters."""
    try:
        text = json.dumps(value, indent=2, default=repr, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"\n... ({len(text) - limit} more characters)"


class Dashboard:
    """One celeriac app seen from the dashboard: the monitor plus the reads and actions."""

    def __init__(self, app: Celery, monitor: Monitor | None = None) -> None:
        self.app = app
        self.monitor = monitor or Monitor(app)
        self._cache: dict[str, tuple[float, Any]] = {}

    async def _cached(self, key: str, make: Any, ttl_s: float = CACHE_S) -> Any:
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < ttl_s:
            return hit[1]
        value = await make()
        self._cache[key] = (time.monotonic(), value)
        return value

    def _forget_cache(self) -> None:
        self._cache.clear()

    # --- shared reads ----------------------------------------------------------------

    async def queue_stats(self) -> dict[str, QueueStats]:
        """Every queue's counts, oldest message, dead letters and lease counters (one call, cached)."""
        return dict(await self._cached("queue_stats", lambda: ops.queue_stats(self.app)))

    async def depths(self) -> dict[str, int]:
        """Waiting (queued plus scheduled) messages per queue that has any."""
        return {name: q.queued + q.scheduled for name, q in (await self.queue_stats()).items()
                if q.queued + q.scheduled}

    async def dead_letter_list(self) -> list[Any]:
        return list(await self._cached("dead", lambda: ops.dead_letters(self.app, DEAD_LETTER_SCAN), 5 * CACHE_S))

    def broker_shown(self) -> str:
        return hide_password(self.app.settings.broker_url)

    def store_shown(self) -> str | None:
        url = self.app.result_backend_url()
        return hide_password(url) if url else None

    async def _records(self, task_ids: list[str]) -> dict[str, ResultRecord]:
        if not task_ids or not self.app.result_backend_url():
            return {}
        return await (await self.app.result_store()).fetch_many(task_ids)

    # --- pages -----------------------------------------------------------------------

    async def summary(self) -> dict[str, Any]:
        """The small live numbers every page's header and the overview update over SSE."""
        monitor = self.monitor
        queues = (await self.queue_stats()).values()
        now = time.time()
        workers = [self.monitor.worker_state(e, now) for e in monitor.workers.values()]
        hour = monitor.hour_counts()
        return {
            "version": monitor.version,
            "succeeded": hour[TASK_SUCCEEDED], "failed": hour[TASK_FAILED], "retried": hour[TASK_RETRIED],
            "revoked": hour[TASK_REVOKED], "started": hour[TASK_STARTED],
            "rate": round(monitor.rate(), 2),
            "waiting": sum(q.queued + q.scheduled for q in queues),
            "leased": sum(q.leased for q in queues),
            "dead_letters": sum(q.dead_letters for q in queues),
            "workers_online": workers.count("online"), "workers_lost": workers.count("lost"),
            "running": len(monitor.running()),
            "error": monitor.error or monitor.stats_error,
        }

    async def overview(self) -> dict[str, Any]:
        summary = await self.summary()
        monitor = self.monitor
        return {
            "summary": summary,
            "series": monitor.series(),
            "runtime": monitor.percentiles(RUNTIME),
            "wait": monitor.percentiles(WAIT),
            "percentile_series": {f"{kind}_p{round(q * 100)}": monitor.percentile_series(kind, q)
                                  for kind in (WAIT, RUNTIME) for q in (0.5, 0.95)},
            "queues": await self.queues(),
        }

    async def queues(self) -> list[dict[str, Any]]:
        stats = await self.queue_stats()
        hourly = self.monitor.per_queue()
        now_ms = time.time() * 1000
        names = sorted({*stats, *hourly, self.app.settings.task_default_queue})
        out = []
        for name in names:
            q = stats.get(name) or QueueStats(name)
            counts = hourly.get(name, {})
            oldest_age = None if q.oldest_queued_ms is None else round(max(now_ms - q.oldest_queued_ms, 0) / 1000, 1)
            out.append({"name": name, "waiting": q.queued + q.scheduled, "queued": q.queued,
                        "scheduled": q.scheduled, "leased": q.leased, "oldest_age_s": oldest_age,
                        "dead_letters": q.dead_letters, "lease_expirations": q.lease_expirations,
                        "lease_reclaims": q.lease_reclaims,
                        "succeeded_last_hour": int(counts.get("succeeded", 0)),
                        "failed_last_hour": int(counts.get("failed", 0)),
                        "per_minute": round(counts.get("recent", 0) / 5, 1)})
        return out

    async def workers(self) -> list[dict[str, Any]]:
        monitor = self.monitor
        now = time.time()
        live = await self._cached("live", lambda: ops.live_workers(self.app)) if monitor.workers else {}
        held_ids = [task_id for (_, task_id) in monitor.held_since]
        records = await self._records(held_ids)
        out = []
        for host, event in sorted(monitor.workers.items()):
            if host in live:
                event = live[host] if live[host].ts > event.ts else event
                state = "online"
            else:
                state = "offline" if monitor.worker_state(event, now) == "offline" else "lost"
            held = []
            if state == "online":
                for task_id in event.held or []:
                    since = monitor.held_since.get((host, task_id), event.ts)
                    row = monitor.tasks.get(task_id)
                    record = records.get(task_id)
                    held.append({"task_id": task_id, "name": (record.name if record else None)
                                 or (row.name if row else None), "running_s": round(now - since, 1)})
            out.append({"hostname": host, "state": state, "pid": event.pid, "concurrency": event.concurrency,
                        "processed": event.processed, "held": held,
                        "last_heartbeat": _iso(event.ts), "heartbeat_age_s": round(now - event.ts, 1)})
        return out

    async def tasks(self, flt: TaskFilter, cursor: str | None = None,
                    limit: int = PAGE_SIZE) -> dict[str, Any]:
        """A page of the task list, newest first, after ``cursor`` (the last row's key)."""
        rows = dict(self.monitor.tasks)
        for task_id, (host, since) in self.monitor.running().items():
            before = rows.get(task_id)
            rows[task_id] = TaskRow(task_id=task_id, name=before.name if before else None, state="STARTED",
                                    queue=before.queue if before else None, worker=host, ts=since,
                                    retries=before.retries if before else 0)
        after = _parse_cursor(cursor)
        picked = sorted((r for r in rows.values() if flt.matches(r)), key=lambda r: (r.ts, r.task_id),
                        reverse=True)
        if after is not None:
            picked = [r for r in picked if (r.ts, r.task_id) < after]
        page = picked[:limit]
        records = await self._records([r.task_id for r in page])
        out = []
        for row in page:
            record = records.get(row.task_id)
            state = row.state if row.state == "STARTED" or record is None else record.state
            out.append({"task_id": row.task_id, "name": row.name or (record.name if record else None),
                        "state": state, "queue": row.queue, "worker": row.worker, "when": _iso(row.ts),
                        "runtime_s": row.runtime_s, "retries": row.retries,
                        "exception": (row.exception or "")[:200] or None})
        next_cursor = f"{page[-1].ts!r}~{page[-1].task_id}" if len(picked) > limit else None
        return {"tasks": out, "next": next_cursor, "filter": flt.query(),
                "known": len(rows), "source": "the event log (the newest events it keeps) and the result store"}

    async def task(self, task_id: str) -> dict[str, Any] | None:
        record = (await self._records([task_id])).get(task_id)
        events = self.monitor.events_of(task_id)
        running = self.monitor.running().get(task_id)
        dead = [d for d in await self.dead_letter_list() if d.task_id == task_id]
        if record is None and not events and running is None and not dead:
            return None
        timeline = _timeline(events)
        if running is not None:
            timeline.append({"what": "running", "when": _iso(running[1]), "ts": running[1], "worker": running[0],
                             "detail": f"held for {time.time() - running[1]:.1f}s"})
        for d in dead:
            timeline.append({"what": "dead-lettered", "when": _iso(d.failed_at_ms / 1000), "ts": d.failed_at_ms / 1000,
                             "worker": None, "detail": d.reason})
        if not events and record is not None:
            if record.date_started_ms:
                timeline.append({"what": "started", "when": _iso(record.date_started_ms / 1000),
                                 "ts": record.date_started_ms / 1000, "worker": record.worker, "detail": ""})
            if record.date_done_ms and record.state in READY_STATES:
                timeline.append({"what": record.state.lower(), "when": _iso(record.date_done_ms / 1000),
                                 "ts": record.date_done_ms / 1000, "worker": record.worker, "detail": ""})
        timeline.sort(key=lambda item: item["ts"])
        last = events[-1] if events else None
        state = "STARTED" if running is not None else (record.state if record else (
            "DEAD-LETTERED" if dead else self.monitor.tasks[task_id].state))
        headers = (record.headers if record else None) or {}
        return {
            "task_id": task_id, "state": state,
            "name": (record.name if record else None) or (last.name if last else None),
            "queue": last.queue if last else (dead[0].queue if dead else None),
            "worker": running[0] if running else (record.worker if record else next(
                (e.hostname for e in reversed(events) if e.type != TASK_SENT), None)),
            "retries": record.retries if record else (last.retries if last else 0),
            "args": shown(record.args) if record and record.args is not None else None,
            "kwargs": shown(record.kwargs) if record and record.kwargs is not None else None,
            "result": shown(record.result) if record and record.state == SUCCESS else None,
            "exception": f"{record.exc_type}: {record.exc_message}" if record and record.exc_type else (
                last.exception if last else None),
            "traceback": record.traceback if record else None,
            "parent_id": record.parent_id if record else None,
            "group_id": record.group_id if record else None,
            "children": list(record.children) if record else [],
            "retry_of": headers.get(RETRY_OF_HEADER) if isinstance(headers, dict) else None,
            "timeline": [{k: v for k, v in item.items() if k != "ts"} for item in timeline],
            "running": running is not None,
            "can_retry": record is not None and record.state in RETRYABLE and record.args is not None,
            "retry_needs": None if record is None or record.args is not None else (
                "the stored result does not hold the arguments: set result_extended = True"),
            "dead_letter": bool(dead),
        }

    async def dead_letters(self, queue: str = "", reason: str = "", name: str = "") -> list[dict[str, Any]]:
        out = []
        for d in await self.dead_letter_list():
            try:
                peek = _peek.decode(d.body)
            except (msgspec.DecodeError, msgspec.ValidationError):
                peek = _Peek(task="(undecodable)")
            if queue and d.queue != queue:
                continue
            if reason and reason.lower() not in d.reason.lower():
                continue
            if name and name.lower() not in peek.task.lower():
                continue
            args = "(pickled)" if peek.serializer == "pickle" else json.dumps(
                [peek.args, peek.kwargs], default=repr)[:300]
            out.append({"task_id": d.task_id, "name": peek.task, "queue": d.queue, "reason": d.reason,
                        "failed_at": _iso(d.failed_at_ms / 1000), "deliveries": d.delivery_count,
                        "priority": d.priority, "call": args})
        return out

    async def schedules(self) -> dict[str, Any]:
        from ..beat.ops import list_entries, make_source

        try:
            entries = await list_entries(self.app, make_source(self.app))
        except Exception as exc:  # a scheduler that cannot be read (Django not set up, a bad entry)
            return {"entries": [], "error": str(exc), "beat_seen": False}
        return {"entries": [e.as_dict() for e in entries], "error": None,
                "beat_seen": any(e.last_fire for e in entries)}

    # --- actions ---------------------------------------------------------------------

    async def retry(self, task_id: str) -> str:
        """Send a finished task again under a new id, with the arguments its stored result
        holds; returns the new id. The old result stays as it was."""
        record = (await self._records([task_id])).get(task_id)
        if record is None:
            raise ActionRefused(f"no result is stored for {task_id}, so its arguments are unknown")
        if record.state not in RETRYABLE:
            raise ActionRefused(f"{task_id} is {record.state}: only a finished task can be sent again")
        if record.args is None or not record.name:
            raise ActionRefused(f"the stored result of {task_id} does not hold its arguments; set "
                                "result_extended = True (for the app or the task) to retry from the dashboard")
        row = self.monitor.tasks.get(task_id)
        headers = dict(record.headers or {})
        headers[RETRY_OF_HEADER] = task_id
        options: dict[str, Any] = {"headers": headers}
        if row is not None and row.queue:
            options["queue"] = row.queue
        result = await self.app.asend_task(record.name, from_wire(record.args), from_wire(record.kwargs or {}),
                                           **options)
        self.monitor.note_sent(str(result.id), record.name, options.get("queue"), f"retry of {task_id}")
        self._forget_cache()
        return str(result.id)

    async def revoke(self, task_id: str, terminate: bool) -> None:
        await ops.revoke(self.app, [task_id], terminate=terminate)

    async def requeue(self, task_ids: list[str] | None) -> dict[str, Any]:
        outcome = await ops.requeue_dead_letters(self.app, task_ids)
        self._forget_cache()
        return {"requeued": outcome.requeued, "skipped": outcome.skipped}

    async def requeue_matching(self, queue: str, reason: str, name: str) -> dict[str, Any]:
        if not (queue or reason or name):
            return await self.requeue(None)
        ids = list(dict.fromkeys(d["task_id"] for d in await self.dead_letters(queue, reason, name)))
        if not ids:
            return {"requeued": [], "skipped": {}}
        return await self.requeue(ids)

    async def purge_dead_letters(self) -> int:
        count = await ops.purge_dead_letters(self.app)
        self._forget_cache()
        return count

    async def purge_queue(self, queue: str) -> int:
        count = await ops.purge_queues(self.app, [queue])
        self._forget_cache()
        return count

    async def switch_schedule(self, name: str, enabled: bool) -> None:
        from ..beat.ops import make_source, switch

        await switch(self.app, make_source(self.app), name, enabled)

    async def run_schedule_now(self, name: str) -> str:
        from ..beat.ops import make_source, run_now

        task_id = await run_now(self.app, make_source(self.app), name)
        self.monitor.note_sent(task_id, name, None, f"run now of {name}")
        return task_id


def _timeline(events: list[Any]) -> list[dict[str, Any]]:
    """Sent, received, started and finished, each with its worker, from a task's events.

    A ``task-sent`` event (``task_send_sent_event``) names the client that sent it;
    without one, the send time comes from the message (``task-received``'s ``sent_ts``).
    A start comes from ``task-started``, or from the outcome's ``started_ts`` for events
    written before workers sent it.
    """
    timeline: list[dict[str, Any]] = []
    sent_times = {round(e.sent_ts or e.ts, 3) for e in events if e.type == TASK_SENT}
    started = {e.retries for e in events if e.type == TASK_STARTED}

    def step(what: str, ts: float, worker: str | None, detail: str = "") -> None:
        timeline.append({"what": what, "when": _iso(ts), "ts": ts, "worker": worker, "detail": detail})

    for event in events:
        attempt = f"attempt {event.retries + 1}"
        if event.type == TASK_SENT:
            eta = f", eta {_iso(event.eta_ts)}" if event.eta_ts else ""
            step("sent", event.sent_ts or event.ts, None if event.hostname == "dashboard" else event.hostname,
                 (event.result or attempt) + eta)
        elif event.type == TASK_RECEIVED:
            if event.sent_ts is not None and round(event.sent_ts, 3) not in sent_times:
                sent_times.add(round(event.sent_ts, 3))
                step("sent", event.sent_ts, None, f"{attempt} (the time in its message)")
            step("received", event.ts, event.hostname,
                 attempt + (f", eta {_iso(event.eta_ts)}" if event.eta_ts else ""))
        elif event.type == TASK_STARTED:
            step("started", event.ts, event.hostname,
                 f"{attempt}, waited {event.wait_s:.3f}s" if event.wait_s is not None else attempt)
        else:
            if event.started_ts is not None and event.retries not in started:
                step("started", event.started_ts, event.hostname, attempt)
            detail = event.exception or event.result or ""
            if event.runtime_s is not None:
                detail = f"after {event.runtime_s:.3f}s" + (f": {detail}" if detail else "")
            step(event.type.removeprefix("task-"), event.ts, event.hostname, detail)
    return timeline


def _parse_cursor(cursor: str | None) -> tuple[float, str] | None:
    if not cursor or "~" not in cursor:
        return None
    ts, _, task_id = cursor.partition("~")
    try:
        return float(ts), task_id
    except ValueError:
        return None
