"""When periodic tasks fire, in Celery's spelling: ``schedule`` (an interval) and ``crontab``.

Pure logic, no I/O, no clock of its own: every question takes the moment it is about
("after this instant", "at or before this instant") and the time zone, as epoch
milliseconds, so beat, the tests and ``celeriac beat --list`` all get the same answers.

Fire times are instants, and every beat computes the same ones:

- An interval counts from a fixed origin, the Unix epoch: ``schedule(10)`` fires at every
  whole multiple of ten seconds since 1970-01-01T00:00:00Z, whenever a beat started.
- A crontab is read as wall-clock time in its zone (the app's ``timezone`` unless the
  crontab names one). Across daylight-saving changes:

  * a wall time that does not exist (clocks jump from 02:00 to 03:00) fires once, at the
    instant of the jump; several such wall times collapse into that one instant;
  * a wall time that happens twice (clocks fall back from 03:00 to 02:00) fires once, the
    first time, when the crontab names hours. A crontab for *every* hour (``hour='*'``)
    follows elapsed time instead and fires in both passes, so ``crontab(minute='*/15')``
    keeps firing every 15 minutes through the night (Vixie cron does the same).

Invalid fields are reported when beat starts, naming the entry (``crontab(hour=25)``
itself does not raise; anything that asks it for a time does). Unlike Unix cron, and like
Celery, ``day_of_month`` and ``day_of_week`` must both match when both are restricted.
"""

from __future__ import annotations

import bisect
import calendar
import datetime as dt
import os
import time
from collections import namedtuple
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .exceptions import ConfigurationError

__all__ = [
    "BaseSchedule",
    "InvalidSchedule",
    "ParseException",
    "crontab",
    "crontab_parser",
    "maybe_schedule",
    "schedstate",
    "schedule",
    "solar",
    "zone_for",
]

MIN_INTERVAL_MS = 100
DAY_MS = 86_400_000
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_SEARCH_MONTHS = 12 * 401  # a date that fits the fields comes back within a 400-year Gregorian cycle

schedstate = namedtuple("schedstate", ("is_due", "next"))


class InvalidSchedule(ConfigurationError, ValueError):
    """A schedule that cannot fire: a bad crontab field, an interval under 0.1 s, ..."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


ParseException = InvalidSchedule  # celery.schedules.ParseException


# --- time zones ---------------------------------------------------------------------


def zone_for(name: str | dt.tzinfo | None, *, enable_utc: bool = True) -> dt.tzinfo:
    """The zone for a ``timezone`` setting: a name, a tzinfo, or None (UTC, or the host's
    zone when ``enable_utc`` is False, as in Celery)."""
    if isinstance(name, dt.tzinfo):
        return name
    if name:
        try:
            return ZoneInfo(str(name))
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigurationError(
                f"timezone {name!r} is unknown; use an IANA name such as 'Europe/Berlin' or 'UTC' "
                "(on Windows, pip install tzdata)") from exc
    return dt.UTC if enable_utc else local_zone()


def local_zone() -> dt.tzinfo:
    """The host's zone with its daylight-saving rules (``TZ``, else ``/etc/localtime``)."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    real = os.path.realpath("/etc/localtime")
    if "zoneinfo/" in real:
        candidates.append(real.split("zoneinfo/", 1)[1])
    for name in candidates:
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return dt.datetime.now().astimezone().tzinfo or dt.UTC  # a fixed offset: the best left


def to_ms(moment: dt.datetime) -> int:
    """Epoch milliseconds; a naive datetime is read as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


def from_ms(ms: int, tz: dt.tzinfo) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz)


# --- the base -----------------------------------------------------------------------


class BaseSchedule:
    """What beat asks of a schedule. Subclasses fill in the arithmetic."""

    tz: dt.tzinfo | None = None  # a zone of its own; None: the app's

    def __init__(self, nowfun: Callable[[], dt.datetime] | None = None, app: Any = None) -> None:
        self.nowfun = nowfun
        self.app = app

    def validate(self) -> None:
        """Raise ``InvalidSchedule`` naming the field if this schedule cannot fire."""

    def next_after(self, after_ms: int, tz: dt.tzinfo) -> int:
        """The first fire time strictly after ``after_ms``."""
        raise NotImplementedError

    def last_at_or_before(self, at_ms: int, tz: dt.tzinfo) -> int | None:
        """The latest fire time at or before ``at_ms`` (None: none in the last 400 years)."""
        raise NotImplementedError

    def describe(self) -> str:
        """The schedule in words, for ``celeriac beat --list`` and the admin."""
        raise NotImplementedError

    def gap_after_ms(self, fire_ms: int, tz: dt.tzinfo) -> int:
        """How long until the tick after ``fire_ms``: the period around that tick."""
        return self.next_after(fire_ms, tz) - fire_ms

    # --- Celery's interface, for code that calls schedules directly ---------------

    def zone(self) -> dt.tzinfo:
        if self.tz is not None:
            return self.tz
        conf = getattr(self.app, "conf", None)
        if conf is not None:
            return zone_for(conf.get("timezone"), enable_utc=bool(conf.get("enable_utc", True)))
        return dt.UTC

    def now(self) -> dt.datetime:
        if self.nowfun is not None:
            return self.nowfun()
        return dt.datetime.now(self.zone())

    def remaining_estimate(self, last_run_at: dt.datetime) -> dt.timedelta:
        """Time from now until the first fire time after ``last_run_at`` (zero if passed)."""
        now_ms = to_ms(self.now())
        due_ms = self.next_after(to_ms(last_run_at), self.zone())
        return dt.timedelta(milliseconds=max(0, due_ms - now_ms))

    def is_due(self, last_run_at: dt.datetime) -> schedstate:
        """``(is_due, seconds until the next check)``, as Celery's schedules answer."""
        tz = self.zone()
        now_ms = to_ms(self.now())
        due_ms = self.next_after(to_ms(last_run_at), tz)
        if due_ms <= now_ms:
            return schedstate(True, (self.next_after(now_ms, tz) - now_ms) / 1000)
        return schedstate(False, (due_ms - now_ms) / 1000)


# --- intervals ----------------------------------------------------------------------


class schedule(BaseSchedule):  # Celery's name, lower case
    """Every ``run_every`` (seconds or a ``timedelta``), counted from the Unix epoch.

    ``relative`` is accepted for Celery's sake: fire times are whole multiples of the
    period already, whichever beat computes them.
    """

    def __init__(self, run_every: float | dt.timedelta | None = None, relative: bool = False,
                 nowfun: Callable[[], dt.datetime] | None = None, app: Any = None) -> None:
        super().__init__(nowfun, app)
        self.run_every_raw = run_every
        self.relative = relative

    @property
    def run_every(self) -> dt.timedelta:
        return dt.timedelta(milliseconds=self.period_ms)

    @property
    def seconds(self) -> float:
        return self.period_ms / 1000

    @property
    def period_ms(self) -> int:
        value = self.run_every_raw
        if isinstance(value, dt.timedelta):
            seconds = value.total_seconds()
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            seconds = float(value)
        else:
            raise InvalidSchedule(
                f"an interval must be a number of seconds or a timedelta, not {type(value).__name__} "
                f"{value!r}", "schedule")
        if not seconds >= MIN_INTERVAL_MS / 1000:  # also refuses NaN
            raise InvalidSchedule(
                f"an interval of {seconds:g} s is under the minimum of {MIN_INTERVAL_MS / 1000:g} s", "schedule")
        if seconds > 400 * 366 * 86400:
            raise InvalidSchedule(f"an interval of {seconds:g} s is longer than 400 years", "schedule")
        return round(seconds * 1000)

    def validate(self) -> None:
        self.period_ms  # noqa: B018  # raises when invalid

    def next_after(self, after_ms: int, tz: dt.tzinfo) -> int:
        period = self.period_ms
        return (after_ms // period + 1) * period

    def last_at_or_before(self, at_ms: int, tz: dt.tzinfo) -> int | None:
        period = self.period_ms
        return (at_ms // period) * period

    def gap_after_ms(self, fire_ms: int, tz: dt.tzinfo) -> int:
        return self.period_ms

    def describe(self) -> str:
        return "every " + _duration_words(self.period_ms)

    def __repr__(self) -> str:
        try:
            return f"<freq: {_duration_words(self.period_ms)}>"
        except InvalidSchedule:
            return f"<freq: {self.run_every_raw!r} (invalid)>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, schedule):
            return NotImplemented
        return self.run_every_raw == other.run_every_raw or _same_period(self, other)

    def __hash__(self) -> int:
        return hash(("schedule", str(self.run_every_raw)))


def _same_period(a: schedule, b: schedule) -> bool:
    try:
        return a.period_ms == b.period_ms
    except InvalidSchedule:
        return False


def _duration_words(ms: int) -> str:
    for unit_ms, name in ((DAY_MS, "day"), (3_600_000, "hour"), (60_000, "minute"), (1000, "second")):
        if ms % unit_ms == 0:
            count = ms // unit_ms
            return name if count == 1 else f"{count} {name}s"
    return f"{ms / 1000:g} seconds"


def maybe_schedule(s: Any, relative: bool = False, app: Any = None) -> Any:
    """A number or a timedelta becomes a ``schedule``; anything else is returned as is."""
    if isinstance(s, (int, float, dt.timedelta)) and not isinstance(s, bool):
        return schedule(s, relative, app=app)
    return s


# --- crontab ------------------------------------------------------------------------

_DAY_NAMES = {"sun": 0, "sunday": 0, "mon": 1, "monday": 1, "tue": 2, "tues": 2, "tuesday": 2, "wed": 3,
              "wednesday": 3, "thu": 4, "thur": 4, "thurs": 4, "thursday": 4, "fri": 5, "friday": 5,
              "sat": 6, "saturday": 6}
_MONTH_NAMES = {name.lower(): i for i, name in enumerate(calendar.month_abbr) if name}
_MONTH_NAMES.update({name.lower(): i for i, name in enumerate(calendar.month_name) if name})
# field: (lowest, highest accepted, names); day_of_week takes 7 for Sunday too.
_FIELDS: dict[str, tuple[int, int, dict[str, int]]] = {
    "minute": (0, 59, {}),
    "hour": (0, 23, {}),
    "day_of_week": (0, 7, _DAY_NAMES),
    "day_of_month": (1, 31, {}),
    "month_of_year": (1, 12, _MONTH_NAMES),
}
_SHORT_DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]


def parse_field(field: str, value: Any) -> frozenset[int]:
    """The set of values a crontab field stands for; ``InvalidSchedule`` names the field."""
    low, high, names = _FIELDS[field]

    def invalid(reason: str) -> InvalidSchedule:
        return InvalidSchedule(f"crontab {field}={value!r} is invalid: {reason}", field)

    if isinstance(value, bool):
        raise invalid("expected a number, a string such as '*/15' or '1-5', or a list of numbers")
    if isinstance(value, int):
        parts = [str(value)]
    elif isinstance(value, str):
        parts = value.split(",")
    elif isinstance(value, Iterable):
        parts = []
        for item in value:
            if isinstance(item, bool) or not isinstance(item, (int, str)):
                raise invalid(f"{item!r} is not a number")
            parts.append(str(item))
        if not parts:
            raise invalid("the list is empty")
    else:
        raise invalid("expected a number, a string such as '*/15' or '1-5', or a list of numbers")

    def number(token: str) -> int:
        token = token.strip().lower()
        if token in names:
            return names[token]
        if not token.isdigit():
            kind = "a day name" if field == "day_of_week" else "a month name" if names else ""
            raise invalid(f"{token!r} is not a number{' or ' + kind if kind else ''}")
        n = int(token)
        if not low <= n <= high:
            shown_high = 6 if field == "day_of_week" else high
            raise invalid(f"{n} is out of range {low}-{shown_high}")
        return n

    found: set[int] = set()
    for raw_part in parts:
        part = raw_part.strip().lower()
        if not part:
            raise invalid("an empty item")
        base, has_step, step_text = part.partition("/")
        step = 1
        if has_step:
            if not step_text.strip().isdigit() or int(step_text) < 1:
                raise invalid(f"step {step_text!r} in {part!r} must be a whole number of at least 1")
            step = int(step_text)
        base = base.strip()
        if base == "*":
            start, end = low, 6 if field == "day_of_week" else high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = number(first), number(last)
        else:
            start = number(base)
            end = (6 if field == "day_of_week" else high) if has_step else start
        if end >= start:
            run = list(range(start, end + 1))
        else:  # wraps past the end, as Celery reads 'fri-mon' or '22-2'
            top = 6 if field == "day_of_week" else high
            run = list(range(start, top + 1)) + list(range(low, end + 1))
        found.update(run[::step])
    if field == "day_of_week" and 7 in found:
        found.discard(7)
        found.add(0)
    return frozenset(found)


class crontab_parser:  # Celery's name, lower case
    """``crontab_parser(60).parse('*/15')`` as in Celery (used by form validators)."""

    _BY_RANGE = {(60, 0): "minute", (24, 0): "hour", (7, 0): "day_of_week", (31, 1): "day_of_month",
                 (12, 1): "month_of_year"}

    def __init__(self, max_: int = 60, min_: int = 0) -> None:
        self.field = self._BY_RANGE.get((max_, min_), "minute")

    def parse(self, spec: str) -> set[int]:
        return set(parse_field(self.field, spec))


class crontab(BaseSchedule):  # Celery's name, lower case
    """Wall-clock times, as cron reads them: ``crontab(minute=0, hour='*/3')``.

    Each field takes a number, a string (``'*'``, ``'*/15'``, ``'1-5'``, ``'1-10/2'``,
    ``'mon-fri'``, ``'jan,jul'``, lists with commas) or a list of those. ``tz`` (a name or
    a tzinfo) gives the crontab a zone of its own instead of the app's ``timezone``.
    """

    def __init__(self, minute: Any = "*", hour: Any = "*", day_of_week: Any = "*", day_of_month: Any = "*",
                 month_of_year: Any = "*", *, tz: str | dt.tzinfo | None = None,
                 nowfun: Callable[[], dt.datetime] | None = None, app: Any = None, **_: Any) -> None:
        super().__init__(nowfun, app)
        self._orig_minute, self._orig_hour = minute, hour
        self._orig_day_of_week, self._orig_day_of_month, self._orig_month_of_year = (
            day_of_week, day_of_month, month_of_year)
        self.error: InvalidSchedule | None = None
        self.tz_name = tz
        self.tz = None
        self._cache: dict[tuple[dt.date, dt.tzinfo], tuple[int, ...]] = {}
        try:
            self._minutes = tuple(sorted(parse_field("minute", minute)))
            self._hours = tuple(sorted(parse_field("hour", hour)))
            self._days_of_week = parse_field("day_of_week", day_of_week)
            self._days_of_month = tuple(sorted(parse_field("day_of_month", day_of_month)))
            self._months = parse_field("month_of_year", month_of_year)
            if not any(day <= _max_days(month) for month in self._months for day in self._days_of_month):
                raise InvalidSchedule(
                    f"crontab day_of_month={day_of_month!r} with month_of_year={month_of_year!r} is invalid: "
                    "no such date exists", "day_of_month")
            if tz is not None:
                try:
                    self.tz = zone_for(tz)
                except ConfigurationError as exc:
                    raise InvalidSchedule(f"crontab tz={tz!r} is invalid: {exc}", "tz") from None
        except InvalidSchedule as exc:
            # Kept, not raised: beat reports it at start-up with the entry's name.
            self.error = exc
        # Every hour matches: the repeated hour of a fall-back runs on elapsed time.
        self._is_hourly = self.error is None and len(self._hours) == 24

    @classmethod
    def from_string(cls, text: str, **options: Any) -> crontab:
        """``'*/15 2 * * mon-fri'``: minute, hour, day of month, month, day of week."""
        fields = text.split()
        if len(fields) != 5:
            made = cls(**options)
            made.error = InvalidSchedule(
                f"crontab {text!r} is invalid: expected five fields (minute hour day-of-month month "
                f"day-of-week), found {len(fields)}", "crontab")
            return made
        minute, hour, day_of_month, month_of_year, day_of_week = fields
        return cls(minute, hour, day_of_week, day_of_month, month_of_year, **options)

    def validate(self) -> None:
        if self.error is not None:
            raise self.error

    # Celery exposes the parsed fields as sets.
    @property
    def minute(self) -> set[int]:
        self.validate()
        return set(self._minutes)

    @property
    def hour(self) -> set[int]:
        self.validate()
        return set(self._hours)

    @property
    def day_of_week(self) -> set[int]:
        self.validate()
        return set(self._days_of_week)

    @property
    def day_of_month(self) -> set[int]:
        self.validate()
        return set(self._days_of_month)

    @property
    def month_of_year(self) -> set[int]:
        self.validate()
        return set(self._months)

    def expression(self) -> str:
        """The five fields as written, in cron's order."""
        return " ".join(_field_text(v) for v in (self._orig_minute, self._orig_hour, self._orig_day_of_month,
                                                  self._orig_month_of_year, self._orig_day_of_week))

    def __repr__(self) -> str:
        return f"<crontab: {self.expression()} (m/h/dM/MY/d)>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, crontab):
            return NotImplemented
        if self.error is not None or other.error is not None:
            return self.expression() == other.expression() and self.tz_name == other.tz_name
        return (self._minutes, self._hours, self._days_of_week, self._days_of_month, self._months, self.tz) == (
            other._minutes, other._hours, other._days_of_week, other._days_of_month, other._months, other.tz)

    def __hash__(self) -> int:
        return hash(("crontab", self.expression(), str(self.tz_name)))

    # --- arithmetic -----------------------------------------------------------------

    def next_after(self, after_ms: int, tz: dt.tzinfo) -> int:
        self.validate()
        tz = self.tz or tz
        start = from_ms(after_ms, tz).date() - dt.timedelta(days=1)
        found: int | None = None
        found_on: dt.date | None = None
        for day in self._dates(start, forward=True):
            if found_on is not None and day > found_on + dt.timedelta(days=1):
                break
            fires = self._fires_on(day, tz)
            i = bisect.bisect_right(fires, after_ms)
            if i < len(fires):
                # A fall-back across midnight can put the next day's first fire before
                # this day's later ones, so one more adjacent day is looked at.
                found = fires[i] if found is None else min(found, fires[i])
                if found_on is None:
                    found_on = day
        if found is None:
            raise InvalidSchedule(f"{self!r} never fires", "crontab")
        return found

    def last_at_or_before(self, at_ms: int, tz: dt.tzinfo) -> int | None:
        self.validate()
        tz = self.tz or tz
        start = from_ms(at_ms, tz).date() + dt.timedelta(days=1)
        found: int | None = None
        found_on: dt.date | None = None
        for day in self._dates(start, forward=False):
            if found_on is not None and day < found_on - dt.timedelta(days=1):
                break
            fires = self._fires_on(day, tz)
            i = bisect.bisect_right(fires, at_ms)
            if i > 0:
                found = fires[i - 1] if found is None else max(found, fires[i - 1])
                if found_on is None:
                    found_on = day
        return found

    def _dates(self, start: dt.date, *, forward: bool) -> Iterator[dt.date]:
        """The dates whose day, month and weekday match, from ``start`` on (or back)."""
        year, month = start.year, start.month
        days = self._days_of_month if forward else tuple(reversed(self._days_of_month))
        for n in range(_SEARCH_MONTHS):
            if not 1 <= year <= 9999:
                return
            if month in self._months:
                last_day = calendar.monthrange(year, month)[1]
                for day in days:
                    if day > last_day:
                        continue
                    if n == 0 and (day < start.day if forward else day > start.day):
                        continue
                    candidate = dt.date(year, month, day)
                    if (candidate.weekday() + 1) % 7 in self._days_of_week:
                        yield candidate
            month += 1 if forward else -1
            if month > 12:
                year, month = year + 1, 1
            elif month < 1:
                year, month = year - 1, 12

    def _fires_on(self, day: dt.date, tz: dt.tzinfo) -> tuple[int, ...]:
        """The sorted fire instants (ms) of the wall times on ``day``."""
        key = (day, tz)
        found = self._cache.get(key)
        if found is None:
            found = self._compute_fires_on(day, tz)
            if len(self._cache) >= 64:
                self._cache.clear()
            self._cache[key] = found
        return found

    def _compute_fires_on(self, day: dt.date, tz: dt.tzinfo) -> tuple[int, ...]:
        midnight = dt.datetime(day.year, day.month, day.day)
        next_midnight = midnight + dt.timedelta(days=1)
        offsets = {moment.replace(tzinfo=tz, fold=fold).utcoffset()
                   for moment in (midnight, next_midnight) for fold in (0, 1)}
        day_ms = (day.toordinal() - _EPOCH_ORDINAL) * DAY_MS
        if len(offsets) == 1:
            # No change of offset on this day (nearly every day): plain arithmetic. A day
            # with two changes that cancel out is assumed not to exist.
            offset = offsets.pop()
            base = day_ms - (int(offset.total_seconds() * 1000) if offset is not None else 0)
            return tuple(base + (h * 60 + m) * 60_000 for h in self._hours for m in self._minutes)
        instants: set[int] = set()
        for h in self._hours:
            for m in self._minutes:
                instants.update(self._resolve(midnight.replace(hour=h, minute=m), tz))
        return tuple(sorted(instants))

    def _resolve(self, wall: dt.datetime, tz: dt.tzinfo) -> list[int]:
        """The instants a wall time fires at: one, the jump for a skipped one, two for a
        repeated one of an hourly crontab."""
        first, second = wall.replace(tzinfo=tz, fold=0), wall.replace(tzinfo=tz, fold=1)
        offset_first, offset_second = first.utcoffset(), second.utcoffset()
        wall_ms = (wall.toordinal() - _EPOCH_ORDINAL) * DAY_MS + (wall.hour * 60 + wall.minute) * 60_000
        if offset_first is None or offset_second is None or offset_first == offset_second:
            return [wall_ms - int((offset_first or dt.timedelta()).total_seconds() * 1000)]
        first_ms = wall_ms - int(offset_first.total_seconds() * 1000)
        second_ms = wall_ms - int(offset_second.total_seconds() * 1000)
        if first_ms < second_ms:  # happens twice: clocks fell back
            return [first_ms, second_ms] if self._is_hourly else [first_ms]
        return [_transition_ms(second_ms, first_ms, tz)]  # skipped: clocks jumped forward

    def describe(self) -> str:
        if self.error is not None:
            return f"invalid crontab {self.expression()}"
        words = self._time_words()
        days = []
        if len(self._days_of_week) < 7:
            days.append("on " + _list_words([_SHORT_DAYS[d] for d in _rotate_sunday_last(self._days_of_week)],
                                            _SHORT_DAYS, sunday_last=True))
        if len(self._days_of_month) < 31:
            days.append("on day " + _number_runs(self._days_of_month) + " of the month")
        if len(self._months) < 12:
            days.append("in " + ", ".join(calendar.month_abbr[m] for m in sorted(self._months)))
        if not days and not words.startswith("every"):
            days.append("every day")
        text = " ".join([words, *days])
        if self.tz_name is not None:
            text += f" ({self.tz_name})"
        return text

    def _time_words(self) -> str:
        minutes, hours = self._minutes, self._hours
        all_minutes, all_hours = len(minutes) == 60, len(hours) == 24
        minute_step = _step_of(minutes, 60)
        hour_step = _step_of(hours, 24)
        if all_minutes and all_hours:
            return "every minute"
        if all_hours and minute_step:
            return f"every {minute_step} minutes"
        if all_hours and len(minutes) == 1:
            return f"every hour at :{minutes[0]:02d}"
        if hour_step and len(minutes) == 1:
            return f"every {hour_step} hours at :{minutes[0]:02d}"
        if len(hours) * len(minutes) <= 6:
            return "at " + ", ".join(f"{h:02d}:{m:02d}" for h in hours for m in minutes)
        if all_minutes:
            return f"every minute of hour {_number_runs(hours)}"
        return f"at minute {_number_runs(minutes)} of hour {'*' if all_hours else _number_runs(hours)}"


def _transition_ms(low_ms: int, high_ms: int, tz: dt.tzinfo) -> int:
    """The instant in [low, high] where the zone's offset changes (to the second)."""
    after = dt.datetime.fromtimestamp(high_ms / 1000, tz).utcoffset()
    low_s, high_s = low_ms // 1000, -(-high_ms // 1000)
    while low_s < high_s:
        middle = (low_s + high_s) // 2
        if dt.datetime.fromtimestamp(middle, tz).utcoffset() == after:
            high_s = middle
        else:
            low_s = middle + 1
    return high_s * 1000


def _max_days(month: int) -> int:
    return 29 if month == 2 else calendar.monthrange(2001, month)[1]


def _field_text(value: Any) -> str:
    if isinstance(value, str):
        return value.replace(" ", "") or "?"
    if isinstance(value, Iterable):
        return ",".join(str(v) for v in value)
    return str(value)


def _step_of(values: tuple[int, ...], size: int) -> int | None:
    """N when the values are exactly 0, N, 2N, ... (N > 1 and dividing ``size``)."""
    if len(values) < 2 or values[0] != 0:
        return None
    step = values[1] - values[0]
    if step > 1 and size % step == 0 and values == tuple(range(0, size, step)):
        return step
    return None


def _number_runs(values: Iterable[int]) -> str:
    """1, 2, 3, 5 -> '1-3, 5'."""
    ordered = sorted(values)
    runs: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        runs.append(str(ordered[i]) if j == i else f"{ordered[i]}-{ordered[j]}" if j > i + 1
                    else f"{ordered[i]}, {ordered[j]}")
        i = j + 1
    return ", ".join(runs)


def _rotate_sunday_last(days: frozenset[int]) -> list[int]:
    return sorted(days, key=lambda d: (d == 0, d))


def _list_words(names: list[str], order: list[str], sunday_last: bool = False) -> str:
    if len(names) >= 3:
        week = order[1:] + order[:1] if sunday_last else order
        indexes = [week.index(n) for n in names]
        if indexes == list(range(indexes[0], indexes[0] + len(indexes))):
            return f"{names[0]}-{names[-1]}"
    return ", ".join(names)


# --- solar --------------------------------------------------------------------------


class solar(BaseSchedule):  # Celery's name, lower case
    """Not available: celeriac beat has no sunrise/sunset schedules."""

    def __init__(self, event: str = "", lat: float = 0.0, lon: float = 0.0, **_: Any) -> None:
        raise ConfigurationError(
            f"solar({event!r}, ...) schedules are not available in celeriac; use a crontab with the "
            "times you need")


def now_ms() -> int:
    return int(time.time() * 1000)
