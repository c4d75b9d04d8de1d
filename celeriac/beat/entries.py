"""Schedule entries: ``beat_schedule``, ``app.add_periodic_task(...)``, checked at start-up.

Every mistake is reported before anything fires, as one ``BeatConfigError`` naming the
entry and the field: an unknown task, an invalid crontab field, an interval under 0.1 s,
arguments that cannot be sent, an unknown key or option, two different entries under
one name.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..exceptions import ConfigurationError, NotRegistered
from ..publish import KNOWN_OPTIONS
from ..schedules import BaseSchedule, InvalidSchedule, crontab, schedule

if TYPE_CHECKING:
    from ..app import Celery
    from ..servers import OutgoingMessage

RUN_ONCE, SKIP, ALLOW = "run_once", "skip", "allow"
MISSED_POLICIES = (RUN_ONCE, SKIP)
OVERLAP_POLICIES = (ALLOW, SKIP)
ENTRY_KEYS = ("task", "schedule", "args", "kwargs", "options", "relative", "missed", "overlap", "enabled")
# Options beat sets itself, or that would break the one-message-per-tick rule.
BEAT_OWNED_OPTIONS = frozenset({"task_id", "on_duplicate", "unique_for_s"})
# Every tick's id is a UUID derived from (entry name, fire time) in this namespace.
TICK_NAMESPACE = uuid.UUID("5a0c3c1e-8f2b-5d55-9f7e-ce1e71acbea7")
CLAIM_MIN_S = 86400.0  # a tick's id is remembered at least this long (or its period, if longer)


class BeatConfigError(ConfigurationError):
    """A schedule entry that cannot run; the message names the entry and the field."""

    def __init__(self, entry: str, field_name: str, reason: str) -> None:
        super().__init__(f"beat entry {entry!r}: {field_name}: {reason}")
        self.entry = entry
        self.field = field_name


def tick_id(entry_name: str, fire_ms: int) -> str:
    """The task id of one tick: the same in every beat, so the broker keeps one message."""
    return str(uuid.uuid5(TICK_NAMESPACE, f"{entry_name}\n{fire_ms}"))


@dataclass(eq=False)
class Entry:
    """One periodic task."""

    name: str
    task: str
    schedule: BaseSchedule
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    missed: str = RUN_ONCE
    overlap: str = ALLOW
    enabled: bool = True
    one_off: bool = False  # fires its first tick after baseline_ms, then never again
    # Ticks at or before this instant never fire (the Django scheduler: the row's last
    # edit, its start time), so editing an entry does not look like missed ticks.
    baseline_ms: int | None = None
    source: str = "beat_schedule"

    def same_definition(self, other: Entry) -> bool:
        return (self.task, self.schedule, self.args, self.kwargs, self.options, self.missed, self.overlap,
                self.one_off, self.baseline_ms) == (
            other.task, other.schedule, other.args, other.kwargs, other.options, other.missed, other.overlap,
            other.one_off, other.baseline_ms)

    def message(self, app: Celery, fire_ms: int, claim_s: float, task_id: str | None = None) -> OutgoingMessage:
        """The message of one tick (or, with ``task_id``, of a run asked for by hand)."""
        options = dict(self.options)
        headers = dict(options.get("headers") or {})
        headers.update(periodic_task_name=self.name, periodic_fire_ms=fire_ms)
        options.update(task_id=task_id or tick_id(self.name, fire_ms), headers=headers)
        if task_id is None:
            options["unique_for_s"] = claim_s
        task = app.get_task(self.task)
        message, _ = task._message(self.args, self.kwargs, options)
        out: OutgoingMessage = message
        return out


def claim_seconds(entry: Entry, fire_ms: int, tz: dt.tzinfo) -> float:
    """How long the broker remembers a tick's id: a day, or the gap to the next tick if longer."""
    return max(CLAIM_MIN_S, entry.schedule.gap_after_ms(fire_ms, tz) / 1000)


# --- reading entries ----------------------------------------------------------------


def config_entries(app: Celery) -> list[Entry]:
    """``beat_schedule`` and ``add_periodic_task`` entries, checked; raises ``BeatConfigError``."""
    raw = app.settings.beat_schedule
    if not isinstance(raw, Mapping):
        raise ConfigurationError(
            f"beat_schedule must be a dict of entry name -> entry, not {type(raw).__name__}")
    found: dict[str, tuple[Entry, str]] = {}
    defaults = {"missed": app.settings.beat_missed, "overlap": app.settings.beat_overlap}
    for name, spec in raw.items():
        entry = parse_entry(app, name, spec, defaults, source="beat_schedule")
        found[entry.name] = (entry, "beat_schedule")
    for name, spec, where in app.added_periodic_tasks():
        entry = parse_entry(app, name, spec, defaults, source="add_periodic_task")
        _add_unique(found, entry, f"add_periodic_task at {where}")
    return [entry for entry, _ in found.values()]


def _add_unique(found: dict[str, tuple[Entry, str]], entry: Entry, where: str) -> None:
    earlier = found.get(entry.name)
    if earlier is not None and not earlier[0].same_definition(entry):
        raise BeatConfigError(entry.name, "name",
                              f"two different entries have this name (one from {earlier[1]}, one from {where}); "
                              "give each its own name")
    if earlier is None:
        found[entry.name] = (entry, where)


def check_unique_names(entries: Iterable[Entry]) -> None:
    """Refuse two different entries under one name (e.g. a setting and a database row)."""
    found: dict[str, tuple[Entry, str]] = {}
    for entry in entries:
        _add_unique(found, entry, entry.source)


def parse_entry(app: Celery, name: Any, spec: Any, defaults: Mapping[str, Any] | None = None, *,
                source: str = "beat_schedule") -> Entry:
    """One entry in Celery's spelling, checked as far as can be without I/O."""
    if not isinstance(name, str) or not name:
        raise BeatConfigError(str(name), "name", "an entry name must be a non-empty string")
    if not isinstance(spec, Mapping):
        raise BeatConfigError(name, "entry", f"expected a dict with 'task' and 'schedule', not {type(spec).__name__}")
    unknown = sorted(set(spec) - set(ENTRY_KEYS))
    if unknown:
        raise BeatConfigError(name, unknown[0], f"unknown key; expected some of {', '.join(ENTRY_KEYS)}")
    defaults = defaults or {}
    task_name = spec.get("task")
    if not isinstance(task_name, str) or not task_name:
        raise BeatConfigError(name, "task", "missing: name the task to run, e.g. 'proj.tasks.cleanup'")
    if "schedule" not in spec:
        raise BeatConfigError(name, "schedule", "missing: give seconds, a timedelta or a crontab(...)")
    entry = Entry(
        name=name, task=task_name, schedule=as_schedule(name, spec["schedule"]),
        args=_args(name, spec.get("args")), kwargs=_kwargs(name, spec.get("kwargs")),
        options=_options(name, spec.get("options")),
        missed=_choice(name, "missed", spec.get("missed", defaults.get("missed", RUN_ONCE)), MISSED_POLICIES),
        overlap=_choice(name, "overlap", spec.get("overlap", defaults.get("overlap", ALLOW)), OVERLAP_POLICIES),
        enabled=_flag(name, "enabled", spec.get("enabled", True)), source=source,
    )
    _flag(name, "relative", spec.get("relative", False))
    check_entry(app, entry)
    return entry


def as_schedule(name: str, value: Any) -> BaseSchedule:
    """Seconds, a timedelta, a celeriac schedule, or one of Celery's own, checked."""
    if isinstance(value, (int, float, dt.timedelta)) and not isinstance(value, bool):
        found: BaseSchedule = schedule(value)
    elif isinstance(value, BaseSchedule):
        found = value
    elif type(value).__module__.startswith("celery.") and hasattr(value, "_orig_minute"):
        # An entry still importing crontab from Celery: read its fields as written.
        found = crontab(value._orig_minute, value._orig_hour, value._orig_day_of_week,
                        value._orig_day_of_month, value._orig_month_of_year)
    elif type(value).__module__.startswith("celery.") and hasattr(value, "run_every"):
        found = schedule(value.run_every)
    else:
        raise BeatConfigError(name, "schedule",
                              f"expected seconds, a timedelta or a crontab(...), not {type(value).__name__} "
                              f"{value!r}")
    try:
        found.validate()
    except InvalidSchedule as exc:
        raise BeatConfigError(name, "schedule", str(exc)) from None
    return found


def _args(name: str, value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise BeatConfigError(name, "args", f"expected a list or tuple of arguments, not {type(value).__name__}")
    return list(value)


def _kwargs(name: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BeatConfigError(name, "kwargs", f"expected a dict of keyword arguments, not {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise BeatConfigError(name, "kwargs", f"keyword {key!r} is not a string")
    return dict(value)


def _options(name: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BeatConfigError(name, "options", f"expected a dict of apply_async options, not {type(value).__name__}")
    for key in value:
        if key in BEAT_OWNED_OPTIONS:
            raise BeatConfigError(name, f"options.{key}", "beat sets this itself (each tick's id comes from the "
                                                         "entry's name and the fire time)")
        if key not in KNOWN_OPTIONS:
            raise BeatConfigError(name, f"options.{key}", "not an apply_async() option")
    return dict(value)


def _choice(name: str, field_name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise BeatConfigError(name, field_name, f"{value!r} is not one of {', '.join(map(repr, allowed))}")
    return str(value)


def _flag(name: str, field_name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise BeatConfigError(name, field_name, f"expected True or False, not {value!r}")
    return value


def check_entry(app: Celery, entry: Entry) -> None:
    """What needs the app: the task is known, its arguments can be sent, overlap can be seen."""
    try:
        task = app.get_task(entry.task)
    except NotRegistered:
        raise BeatConfigError(
            entry.name, "task",
            f"{entry.task!r} is not a registered task; import the module that defines it in this "
            "process (-A, include=, imports= or autodiscover_tasks()) or fix the name") from None
    try:
        entry.message(app, 0, CLAIM_MIN_S)
    except TypeError as exc:  # wrong arguments for the function, or a SerializationError
        field_name = "kwargs" if "keyword" in str(exc) else "args"
        raise BeatConfigError(entry.name, field_name, str(exc)) from None
    except ConfigurationError as exc:
        raise BeatConfigError(entry.name, "options", str(exc)) from None
    if entry.overlap == SKIP:
        ignored = entry.options.get("ignore_result")
        if ignored is None:
            ignored = task.ignore_result if task.ignore_result is not None else app.settings.task_ignore_result
        if ignored:
            raise BeatConfigError(entry.name, "overlap",
                                  "'skip' needs the previous run's result to tell when it finished, but the task "
                                  "ignores its result (ignore_result)")
        if app.result_backend_url() is None:
            raise BeatConfigError(entry.name, "overlap",
                                  "'skip' needs a result backend to tell when the previous run finished")
