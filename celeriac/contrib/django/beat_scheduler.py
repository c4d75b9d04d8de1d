"""``celeriac beat --scheduler django``: periodic tasks kept in Django's database.

The entries are the settings' (``CELERY_BEAT_SCHEDULE``, ``add_periodic_task``) plus the
``PeriodicTask`` rows the admin edits. Every beat checks for edits every
``beat_max_loop_interval`` seconds (5) with one cheap query (the newest ``date_changed``
and the row count) and reloads the rows when it moved; an edited row counts from its
edit, so a change never looks like missed ticks. Ticks are claimed through the broker like
any other entry's; the rows only note the last run (``last_run_at``, ``total_run_count``,
one UPDATE that the first beat to note a tick wins).

``django_celery_beat.schedulers:DatabaseScheduler`` is accepted as a spelling of this.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import close_old_connections
from django.db.models import Case, Count, F, Max, Q, Value, When
from django.utils import timezone

from ...beat.entries import (
    BeatConfigError,
    Entry,
    check_entry,
    config_entries,
)
from ...beat.state import Fire
from ...schedules import BaseSchedule, InvalidSchedule, crontab, schedule
from .discovery import load_project_app

if TYPE_CHECKING:
    from ...app import Celery

logger = logging.getLogger("celeriac.beat")
T = TypeVar("T")

PERIOD_SECONDS = {"seconds": 1.0, "minutes": 60.0, "hours": 3600.0, "days": 86400.0}


def schedule_of(row: Any) -> BaseSchedule:
    """The row's schedule; raises ``InvalidSchedule`` naming the field."""
    has_interval = row.every is not None
    has_crontab = bool((row.crontab or "").strip())
    if has_interval == has_crontab:
        raise InvalidSchedule("give an interval (every and period) or a crontab, not both and not neither",
                              "crontab" if has_crontab else "every")
    if has_crontab:
        found: BaseSchedule = crontab.from_string(row.crontab.strip(), tz=(row.crontab_timezone or "").strip() or None)
    else:
        period = PERIOD_SECONDS.get(row.period or "seconds")
        if period is None:
            raise InvalidSchedule(f"period {row.period!r} is not one of {', '.join(PERIOD_SECONDS)}", "period")
        found = schedule(float(row.every) * period)
    found.validate()
    return found


def row_field(row: Any, exc: InvalidSchedule) -> str:
    """The model field a schedule error is about."""
    if exc.field in ("every", "period", "crontab"):
        return str(exc.field)
    if exc.field == "tz":
        return "crontab_timezone"
    # A crontab field (minute, hour, ...) or the interval's length.
    return "crontab" if (row.crontab or "").strip() else "every"


def entry_of(app: Celery, row: Any) -> Entry:
    """The row as a checked beat entry; raises ``BeatConfigError`` naming the row and field."""
    try:
        found_schedule = schedule_of(row)
    except InvalidSchedule as exc:
        raise BeatConfigError(row.name, row_field(row, exc), str(exc)) from None
    options: dict[str, Any] = {}
    if row.queue:
        options["queue"] = row.queue
    if row.priority is not None:
        options["priority"] = row.priority
    if row.expire_seconds is not None:
        options["expires"] = row.expire_seconds
    if not isinstance(row.args, list):
        raise BeatConfigError(row.name, "args", f"expected a JSON list, not {type(row.args).__name__}")
    if not isinstance(row.kwargs, dict):
        raise BeatConfigError(row.name, "kwargs", f"expected a JSON object, not {type(row.kwargs).__name__}")
    baseline = _ms(row.date_changed) if row.date_changed is not None else None
    if row.start_time is not None:
        start_ms = _ms(row.start_time) - 1  # a tick right at the start time fires
        baseline = start_ms if baseline is None else max(baseline, start_ms)
    entry = Entry(name=row.name, task=row.task, schedule=found_schedule, args=list(row.args),
                  kwargs=dict(row.kwargs), options=options, missed=row.missed, overlap=row.overlap,
                  enabled=bool(row.enabled), one_off=bool(row.one_off), baseline_ms=baseline, source="django")
    check_entry(app, entry)
    return entry


def validate_row(row: Any) -> None:
    """``PeriodicTask.clean()``: the errors beat would report, on the form's fields."""
    try:
        schedule_of(row)
    except InvalidSchedule as exc:
        raise ValidationError({row_field(row, exc): str(exc)}) from None
    app = load_project_app(required=False)
    if app is None:
        return
    if row.name in (app.conf.get("beat_schedule") or {}) or any(
            name == row.name for name, _, _ in app.added_periodic_tasks()):
        raise ValidationError({"name": f"{row.name!r} is already the name of an entry in the settings' "
                                       "beat_schedule; choose another"})
    try:
        entry_of(app, _Unsaved(row))
    except BeatConfigError as exc:
        if exc.field in ("task", "args", "kwargs", "overlap"):
            raise ValidationError({exc.field: str(exc)}) from None
        raise ValidationError(str(exc)) from None


class _Unsaved:
    """A row being validated: no ``date_changed`` yet."""

    def __init__(self, row: Any) -> None:
        self._row = row

    def __getattr__(self, name: str) -> Any:
        return None if name == "date_changed" else getattr(self._row, name)


class DatabaseSource:
    """The entry source of ``--scheduler django``."""

    description = "django"

    def __init__(self, app: Celery) -> None:
        self.app = app
        self._marker: tuple[Any, ...] | None = None
        self._reported: set[tuple[str, Any]] = set()

    async def load(self) -> list[Entry]:
        entries = config_entries(self.app)
        names = {e.name for e in entries}
        marker, rows = await _in_thread(_read_rows)
        self._marker = marker
        for row in rows:
            try:
                if row.name in names:
                    raise BeatConfigError(row.name, "name", "an entry in the settings has this name; rename the "
                                                            "periodic task (the settings' entry runs)")
                entries.append(entry_of(self.app, row))
            except BeatConfigError as exc:
                # A bad row must not stop the other entries (the admin edits them live);
                # each version of it is reported once.
                if (row.name, row.date_changed) not in self._reported:
                    self._reported.add((row.name, row.date_changed))
                    logger.error("%s; the periodic task is left out until it is fixed", exc)
        return entries

    async def has_changed(self) -> bool:
        return await _in_thread(_read_marker) != self._marker

    async def fired(self, fires: Sequence[Fire]) -> None:
        await _in_thread(note_fires, fires)

    async def switch(self, name: str, enabled: bool) -> bool:
        return await _in_thread(_switch, name, enabled)


async def _in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run ORM calls on a thread, as Django wants them off the event loop, dropping
    broken or expired connections before and after (as around a request)."""

    def call() -> T:
        close_old_connections()
        try:
            return fn(*args)
        finally:
            close_old_connections()

    return await asyncio.to_thread(call)


DatabaseScheduler = DatabaseSource  # the name django-celery-beat users know


def note_fires(fires: Sequence[Fire]) -> None:
    """Note runs on their rows; the first beat to note a tick wins, the others change nothing."""
    from .models import PeriodicTask  # models.py imports this module

    for fire in fires:
        when = _aware(fire.fire_ms)
        changes: dict[str, Any] = {"last_run_at": when, "last_task_id": fire.task_id,
                                   "total_run_count": F("total_run_count") + 1}
        if not fire.is_manual:
            # A one-off is switched off by its run. update() leaves date_changed alone:
            # that is not an edit, and beats need not reload for it.
            changes["enabled"] = Case(When(one_off=True, then=Value(False)), default=F("enabled"))
        PeriodicTask.objects.filter(name=fire.entry).filter(
            Q(last_run_at__isnull=True) | Q(last_run_at__lt=when)).update(**changes)


def _read_rows() -> tuple[tuple[Any, ...], list[Any]]:
    from .models import PeriodicTask  # models.py imports this module

    rows = list(PeriodicTask.objects.all())
    return _marker_of(rows), rows


def _read_marker() -> tuple[Any, ...]:
    from .models import PeriodicTask  # models.py imports this module

    found = PeriodicTask.objects.aggregate(newest=Max("date_changed"), count=Count("id"))
    return (found["newest"], found["count"])


def _marker_of(rows: list[Any]) -> tuple[Any, ...]:
    return (max((r.date_changed for r in rows), default=None), len(rows))


def _switch(name: str, enabled: bool) -> bool:
    from .models import PeriodicTask  # models.py imports this module

    # date_changed moves: every beat reloads the row, and ticks while it was off are not
    # missed ones.
    return bool(PeriodicTask.objects.filter(name=name).update(enabled=enabled, date_changed=timezone.now()))


def _ms(moment: dt.datetime) -> int:
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.get_default_timezone())
    return int(moment.timestamp() * 1000)


def _aware(ms: int) -> dt.datetime:
    moment = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    return moment if settings.USE_TZ else timezone.make_naive(moment)


__all__ = ["DatabaseScheduler", "DatabaseSource", "entry_of", "note_fires", "schedule_of", "validate_row"]
