"""What the CLI and the Django admin do with a schedule: list it, switch entries, run one now.

None of these needs a running beat: they read and write the same shared records the beats
read (see ``state.py``), and a run asked for by hand is sent from here.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ..exceptions import ConfigurationError
from ..schedules import InvalidSchedule
from .entries import Entry
from .loop import ConfigSource, EntrySource
from .state import BeatState, EntryState, Fire, open_state_store

if TYPE_CHECKING:
    from ..app import Celery

# --scheduler spellings: Celery's and django-celery-beat's classes name ours.
DEFAULT_SCHEDULER, DJANGO_SCHEDULER = "default", "django"
SCHEDULERS = {
    "default": DEFAULT_SCHEDULER,
    "celery.beat:PersistentScheduler": DEFAULT_SCHEDULER,
    "celery.beat.PersistentScheduler": DEFAULT_SCHEDULER,
    "celery.beat:Scheduler": DEFAULT_SCHEDULER,
    "django": DJANGO_SCHEDULER,
    "django_celery_beat.schedulers:DatabaseScheduler": DJANGO_SCHEDULER,
    "django_celery_beat.schedulers.DatabaseScheduler": DJANGO_SCHEDULER,
    "celeriac.contrib.django.beat_scheduler:DatabaseScheduler": DJANGO_SCHEDULER,
}


def make_source(app: Celery, scheduler: str | None = None) -> EntrySource:
    """The entry source a ``--scheduler`` value (or the ``beat_scheduler`` setting) names."""
    name = scheduler or app.settings.beat_scheduler or DEFAULT_SCHEDULER
    if not isinstance(name, str):  # a class, as Celery allows
        name = f"{name.__module__}:{name.__qualname__}"
    kind = SCHEDULERS.get(name)
    if kind is None:
        raise ConfigurationError(
            f"beat scheduler {name!r} is unknown; use 'default' (beat_schedule and add_periodic_task) or "
            "'django' (the periodic tasks in Django's admin; django_celery_beat.schedulers:DatabaseScheduler "
            "means the same)")
    if kind == DJANGO_SCHEDULER:
        from ..contrib.django.beat_scheduler import DatabaseSource  # Django is optional

        return DatabaseSource(app)
    return ConfigSource(app)


@dataclass
class EntryView:
    """One row of ``celeriac beat --list``."""

    name: str
    task: str
    schedule: str
    enabled: bool
    next_fire: str | None
    last_fire: str | None
    last_task_id: str | None
    last_state: str | None
    last_was_manual: bool
    source: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def list_entries(app: Celery, source: EntrySource) -> list[EntryView]:
    entries = await source.load()
    tz = app.settings.tz
    states = await _read_states(app, [e.name for e in entries])
    task_ids = [s.last_task_id for s in states.values() if s.last_task_id]
    records = {}
    store_url = app.result_backend_url()
    if task_ids and store_url:
        records = await (await app.result_store()).fetch_many(task_ids)
    now_ms = int(time.time() * 1000)
    views = []
    for entry in entries:
        state = states[entry.name]
        is_enabled = entry.enabled and state.enabled is not False
        next_fire = None
        if is_enabled and not (entry.one_off and state.last_fire_ms is not None):
            try:
                after = max(now_ms, entry.baseline_ms or now_ms)
                next_fire = _local(entry.schedule.next_after(after, tz), tz)
            except InvalidSchedule:
                next_fire = None
        record = records.get(state.last_task_id or "")
        views.append(EntryView(
            name=entry.name, task=entry.task, schedule=entry.schedule.describe(), enabled=is_enabled,
            next_fire=next_fire,
            last_fire=_local(state.last_fire_ms, tz) if state.last_fire_ms is not None else None,
            last_task_id=state.last_task_id,
            last_state=(record.state if record is not None else "PENDING") if state.last_task_id else None,
            last_was_manual=state.is_manual, source=entry.source))
    return views


async def switch(app: Celery, source: EntrySource, name: str, enabled: bool) -> None:
    """Turn an entry on or off on every beat (within their next sync, a few seconds)."""
    await _find(source, name)
    if await source.switch(name, enabled):
        return  # the source keeps it (a Django row): one switch, the row's
    store = open_state_store(app)
    if store is None:
        raise ConfigurationError("beat keeps its switches with the broker, and this broker holds no records; "
                                 "set a result_backend")
    await store.connect()
    try:
        await BeatState(store).switch(name, enabled, by="celeriac beat")
    finally:
        await store.close()


async def run_now(app: Celery, source: EntrySource, name: str) -> str:
    """Send the entry's task now, apart from its ticks; returns the task id."""
    fire = await send_now(app, await _find(source, name))
    await source.fired([fire])
    return fire.task_id


async def send_now(app: Celery, entry: Entry) -> Fire:
    """Send one run of ``entry`` under a fresh id and note it as the entry's last run."""
    now_ms = int(time.time() * 1000)
    fire = Fire(entry.name, now_ms, str(uuid.uuid4()), is_manual=True)
    await app.publish([entry.message(app, now_ms, 0.0, task_id=fire.task_id)])
    store = open_state_store(app)
    if store is not None:
        await store.connect()
        try:
            await BeatState(store).record_fires([fire], by="run now")
        finally:
            await store.close()
    return fire


async def _find(source: EntrySource, name: str) -> Entry:
    entries = await source.load()
    for entry in entries:
        if entry.name == name:
            return entry
    known = ", ".join(repr(e.name) for e in entries) or "none"
    raise ConfigurationError(f"no beat entry is named {name!r}; the entries are: {known}")


async def _read_states(app: Celery, names: list[str]) -> dict[str, EntryState]:
    store = open_state_store(app)
    if store is None:
        return {name: EntryState() for name in names}
    await store.connect()
    try:
        return await BeatState(store).read(names)
    finally:
        await store.close()


def _local(ms: int, tz: dt.tzinfo) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz).isoformat(timespec="seconds")
