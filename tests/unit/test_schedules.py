"""``celeriac.schedules``: crontab fields, interval and crontab arithmetic, daylight-saving days.

Every question is asked at an explicit instant (the injected clock): no test reads the
real time.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from celeriac.exceptions import ConfigurationError
from celeriac.schedules import (
    InvalidSchedule,
    ParseException,
    crontab,
    crontab_parser,
    from_ms,
    maybe_schedule,
    schedule,
    solar,
    to_ms,
    zone_for,
)

UTC = dt.UTC
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
SEOUL = ZoneInfo("Asia/Seoul")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")  # moves its clocks by 30 minutes
ZONES = [UTC, BERLIN, NEW_YORK, SEOUL, LORD_HOWE, ZoneInfo("America/Santiago")]


def at(tz: dt.tzinfo, *fields: int, fold: int = 0) -> int:
    """Epoch ms of a wall time in ``tz``."""
    return to_ms(dt.datetime(*fields, tzinfo=tz, fold=fold))  # type: ignore[misc]


def utc(*fields: int) -> int:
    return at(UTC, *fields)


def fires(s: crontab | schedule, tz: dt.tzinfo, start_ms: int, end_ms: int) -> list[int]:
    """Every fire time in (start, end]."""
    found = []
    t = s.next_after(start_ms, tz)
    while t <= end_ms:
        found.append(t)
        t = s.next_after(t, tz)
    return found


# --- crontab fields -------------------------------------------------------------------


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("minute", "*", set(range(60))),
    ("minute", "*/15", {0, 15, 30, 45}),
    ("minute", "5/20", {5, 25, 45}),
    ("minute", "1-10/3", {1, 4, 7, 10}),
    ("minute", "0,30", {0, 30}),
    ("minute", 7, {7}),
    ("minute", [0, "15", "40-42"], {0, 15, 40, 41, 42}),
    ("hour", "22-2", {22, 23, 0, 1, 2}),  # wraps, as Celery reads it
    ("hour", "9-17", set(range(9, 18))),
    ("day_of_week", "mon-fri", {1, 2, 3, 4, 5}),
    ("day_of_week", "sun", {0}),
    ("day_of_week", 7, {0}),
    ("day_of_week", "Saturday,sunday", {6, 0}),
    ("day_of_week", "fri-mon", {5, 6, 0, 1}),
    ("day_of_week", "*/2", {0, 2, 4, 6}),
    ("day_of_month", "1,15,31", {1, 15, 31}),
    ("day_of_month", "*", set(range(1, 32))),
    ("month_of_year", "jan,jul", {1, 7}),
    ("month_of_year", "*/3", {1, 4, 7, 10}),
    ("month_of_year", "December", {12}),
])
def test_fields(field: str, value: object, expected: set[int]) -> None:
    assert getattr(crontab(**{field: value}), field) == expected


@pytest.mark.parametrize(("fields", "bad_field", "message"), [
    ({"minute": 60}, "minute", "60 is out of range 0-59"),
    ({"minute": "61"}, "minute", "61 is out of range 0-59"),
    ({"hour": "25"}, "hour", "25 is out of range 0-23"),
    ({"hour": "*/0"}, "hour", "step '0'"),
    ({"hour": "1-"}, "hour", "'' is not a number"),
    ({"minute": ""}, "minute", "an empty item"),
    ({"minute": "1,,2"}, "minute", "an empty item"),
    ({"day_of_week": "funday"}, "day_of_week", "'funday' is not a number or a day name"),
    ({"day_of_week": 8}, "day_of_week", "8 is out of range 0-6"),
    ({"day_of_month": 0}, "day_of_month", "0 is out of range 1-31"),
    ({"month_of_year": 13}, "month_of_year", "13 is out of range 1-12"),
    ({"month_of_year": "smarch"}, "month_of_year", "not a number or a month name"),
    ({"minute": True}, "minute", "expected a number"),
    ({"minute": 1.5}, "minute", "expected a number"),
    ({"minute": []}, "minute", "the list is empty"),
    ({"day_of_month": 31, "month_of_year": "2,4"}, "day_of_month", "no such date exists"),
    ({"day_of_month": "30", "month_of_year": "feb"}, "day_of_month", "no such date exists"),
])
def test_invalid_fields_name_the_field(fields: dict[str, object], bad_field: str, message: str) -> None:
    schedule_ = crontab(**fields)  # type: ignore[arg-type]  # kept, not raised: beat names the entry
    with pytest.raises(InvalidSchedule, match=f"crontab {bad_field}=") as caught:
        schedule_.validate()
    assert message in str(caught.value)
    assert caught.value.field == bad_field
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, ConfigurationError)
    with pytest.raises(InvalidSchedule):
        schedule_.next_after(0, UTC)


def test_a_leap_day_is_a_date() -> None:
    crontab(day_of_month=29, month_of_year=2).validate()


def test_from_string_reads_crons_order() -> None:
    parsed = crontab.from_string("*/15 2 1,15 jan mon-fri")
    assert parsed == crontab(minute="*/15", hour=2, day_of_month="1,15", month_of_year=1, day_of_week="1-5")
    assert repr(parsed) == "<crontab: */15 2 1,15 jan mon-fri (m/h/dM/MY/d)>"
    with pytest.raises(InvalidSchedule, match="expected five fields"):
        crontab.from_string("* * *").validate()


def test_equality_is_by_meaning() -> None:
    assert crontab(minute="0,30") == crontab(minute=[30, 0])
    assert crontab(day_of_week="sun") == crontab(day_of_week=7)
    assert crontab(minute=0) != crontab(minute=1)
    assert schedule(10) == schedule(dt.timedelta(seconds=10))
    assert crontab() != schedule(60)


@pytest.mark.parametrize(("made", "words"), [
    (crontab(), "every minute"),
    (crontab(minute="*/15"), "every 15 minutes"),
    (crontab(minute=5), "every hour at :05"),
    (crontab(minute=0, hour="*/6"), "every 6 hours at :00"),
    (crontab(minute=30, hour=2), "at 02:30 every day"),
    (crontab(minute=0, hour="9,17", day_of_week="mon-fri"), "at 09:00, 17:00 on Mon-Fri"),
    (crontab(minute=0, hour=0, day_of_month=1), "at 00:00 on day 1 of the month"),
    (crontab(minute=0, hour=0, day_of_month=29, month_of_year=2), "at 00:00 on day 29 of the month in Feb"),
    (crontab(minute=0, hour=7, day_of_week="sat,sun"), "at 07:00 on Sat, Sun"),
    (crontab(minute=30, hour=2, tz="Asia/Seoul"), "at 02:30 every day (Asia/Seoul)"),
    (schedule(10), "every 10 seconds"),
    (schedule(1.5), "every 1.5 seconds"),
    (schedule(dt.timedelta(minutes=5)), "every 5 minutes"),
    (schedule(3600), "every hour"),
    (schedule(dt.timedelta(days=2)), "every 2 days"),
])
def test_schedules_in_words(made: crontab | schedule, words: str) -> None:
    assert made.describe() == words


def test_celery_helpers() -> None:
    assert crontab_parser(60).parse("*/20") == {0, 20, 40}
    assert crontab_parser(7).parse("mon-wed") == {1, 2, 3}
    assert ParseException is InvalidSchedule
    assert isinstance(maybe_schedule(30), schedule)
    assert isinstance(maybe_schedule(dt.timedelta(seconds=5)), schedule)
    cron = crontab()
    assert maybe_schedule(cron) is cron
    with pytest.raises(ConfigurationError, match="solar"):
        solar("sunrise", 37.5, 127.0)


# --- intervals --------------------------------------------------------------------------


def test_interval_fire_times_count_from_the_epoch() -> None:
    every_10 = schedule(10)
    # Whenever the question is asked, the answers are the same instants: multiples of 10 s.
    assert every_10.next_after(utc(2026, 1, 1, 12, 0, 3), UTC) == utc(2026, 1, 1, 12, 0, 10)
    assert every_10.next_after(utc(2026, 1, 1, 12, 0, 10), UTC) == utc(2026, 1, 1, 12, 0, 20)
    assert every_10.last_at_or_before(utc(2026, 1, 1, 12, 0, 10), UTC) == utc(2026, 1, 1, 12, 0, 10)
    assert every_10.last_at_or_before(utc(2026, 1, 1, 12, 0, 19), UTC) == utc(2026, 1, 1, 12, 0, 10)
    # Zones change nothing: an interval is elapsed time.
    assert every_10.next_after(utc(2026, 3, 29, 0, 59, 55), BERLIN) == utc(2026, 3, 29, 1, 0, 0)


def test_interval_of_a_day_fires_at_midnight_utc() -> None:
    daily = schedule(dt.timedelta(days=1))
    assert daily.next_after(at(SEOUL, 2026, 5, 1, 12), SEOUL) == utc(2026, 5, 2)


def test_sub_second_intervals() -> None:
    tenth = schedule(0.1)
    assert tenth.next_after(1_050, UTC) == 1_100
    assert tenth.gap_after_ms(1_100, UTC) == 100
    assert schedule(dt.timedelta(milliseconds=250)).period_ms == 250


@pytest.mark.parametrize(("value", "message"), [
    (0.05, "under the minimum of 0.1 s"),
    (0, "under the minimum"),
    (-5, "under the minimum"),
    (dt.timedelta(milliseconds=10), "under the minimum"),
    (float("nan"), "under the minimum"),
    (True, "must be a number of seconds or a timedelta"),
    ("10", "must be a number of seconds or a timedelta"),
])
def test_bad_intervals(value: object, message: str) -> None:
    made = schedule(value)  # type: ignore[arg-type]
    with pytest.raises(InvalidSchedule, match=message) as caught:
        made.validate()
    assert caught.value.field == "schedule"


# --- crontab arithmetic in UTC ----------------------------------------------------------


def test_every_minute_and_every_quarter_hour() -> None:
    start = utc(2026, 1, 1, 10, 7, 30)
    assert crontab().next_after(start, UTC) == utc(2026, 1, 1, 10, 8)
    assert crontab(minute="*/15").next_after(start, UTC) == utc(2026, 1, 1, 10, 15)
    assert crontab(minute="*/15").last_at_or_before(start, UTC) == utc(2026, 1, 1, 10, 0)
    # Exactly on a tick: next is strictly after, last is the tick itself.
    assert crontab(minute="*/15").next_after(utc(2026, 1, 1, 10, 15), UTC) == utc(2026, 1, 1, 10, 30)
    assert crontab(minute="*/15").last_at_or_before(utc(2026, 1, 1, 10, 15), UTC) == utc(2026, 1, 1, 10, 15)


def test_weekdays_and_day_names() -> None:
    weekday_mornings = crontab(minute=0, hour=9, day_of_week="mon-fri")
    friday = utc(2026, 1, 2, 10)  # a Friday, after nine
    assert weekday_mornings.next_after(friday, UTC) == utc(2026, 1, 5, 9)  # Monday
    assert weekday_mornings.last_at_or_before(utc(2026, 1, 4, 12), UTC) == utc(2026, 1, 2, 9)  # Sunday -> Friday


def test_day_of_month_and_day_of_week_must_both_match() -> None:
    friday_13th = crontab(minute=0, hour=0, day_of_month=13, day_of_week="fri")
    assert friday_13th.next_after(utc(2026, 1, 1), UTC) == utc(2026, 2, 13)
    assert friday_13th.next_after(utc(2026, 2, 13), UTC) == utc(2026, 3, 13)
    assert friday_13th.next_after(utc(2026, 3, 13), UTC) == utc(2026, 11, 13)


def test_month_ends() -> None:
    the_31st = crontab(minute=0, hour=0, day_of_month=31)
    assert fires(the_31st, UTC, utc(2026, 1, 1), utc(2026, 12, 31, 23)) == [
        utc(2026, m, 31) for m in (1, 3, 5, 7, 8, 10, 12)]
    last_days = crontab(minute=0, hour=0, day_of_month="28-31", month_of_year=2)
    assert fires(last_days, UTC, utc(2027, 1, 1), utc(2028, 12, 31)) == [
        utc(2027, 2, 28), utc(2028, 2, 28), utc(2028, 2, 29)]
    # Across a year end, both ways.
    assert the_31st.next_after(utc(2026, 12, 31, 1), UTC) == utc(2027, 1, 31)
    assert the_31st.last_at_or_before(utc(2027, 1, 30), UTC) == utc(2026, 12, 31)


def test_leap_day() -> None:
    leap_day = crontab(minute=0, hour=12, day_of_month=29, month_of_year=2)
    assert leap_day.next_after(utc(2025, 3, 1), UTC) == utc(2028, 2, 29, 12)
    assert leap_day.last_at_or_before(utc(2028, 2, 29, 11), UTC) == utc(2024, 2, 29, 12)
    # 2100 is not a leap year.
    assert leap_day.next_after(utc(2096, 3, 1), UTC) == utc(2104, 2, 29, 12)
    # A leap day that is also a Monday: rare, and still found.
    monday = crontab(minute=0, hour=0, day_of_month=29, month_of_year=2, day_of_week="mon")
    expected = next(dt.datetime(y, 2, 29, tzinfo=UTC) for y in range(2025, 2200)
                    if y % 4 == 0 and (y % 100 or y % 400 == 0) and dt.date(y, 2, 29).weekday() == 0)
    assert monday.next_after(utc(2025, 1, 1), UTC) == to_ms(expected)


# --- daylight-saving days ----------------------------------------------------------------


@pytest.mark.parametrize(("tz", "day", "jump_utc"), [
    (BERLIN, (2026, 3, 29), utc(2026, 3, 29, 1)),  # 02:00 CET -> 03:00 CEST
    (NEW_YORK, (2026, 3, 8), utc(2026, 3, 8, 7)),  # 02:00 EST -> 03:00 EDT
    (SEOUL, (1987, 5, 10), utc(1987, 5, 9, 17)),  # 02:00 KST -> 03:00 KDT
])
def test_a_skipped_wall_time_fires_once_at_the_jump(tz: ZoneInfo, day: tuple[int, int, int], jump_utc: int) -> None:
    daily_0230 = crontab(minute=30, hour=2)
    before = at(tz, *day) - 1
    that_day = fires(daily_0230, tz, before, before + 86_400_000)
    assert that_day == [jump_utc]
    assert from_ms(jump_utc, tz).hour == 3 and from_ms(jump_utc, tz).minute == 0
    # Every wall time in the gap collapses into the same instant: still one fire.
    gap_times = crontab(minute="0,15,30,45", hour=2)
    assert fires(gap_times, tz, before, before + 86_400_000) == [jump_utc]
    # And the day after, 02:30 is 02:30 again.
    assert daily_0230.next_after(jump_utc, tz) == at(tz, day[0], day[1], day[2] + 1, 2, 30)


@pytest.mark.parametrize(("tz", "day", "repeated_hour"), [
    (BERLIN, (2026, 10, 25), 2),  # 03:00 CEST -> 02:00 CET
    (NEW_YORK, (2026, 11, 1), 1),  # 02:00 EDT -> 01:00 EST
    (SEOUL, (1987, 10, 11), 2),  # 03:00 KDT -> 02:00 KST
])
def test_a_repeated_hour_never_fires_twice(tz: ZoneInfo, day: tuple[int, int, int], repeated_hour: int) -> None:
    daily = crontab(minute=30, hour=repeated_hour)
    before = at(tz, *day) - 1
    that_day = fires(daily, tz, before, before + 86_400_000)
    assert that_day == [at(tz, *day, repeated_hour, 30, fold=0)]  # the first pass only
    quarter_hours_of_that_hour = crontab(minute="*/15", hour=repeated_hour)
    assert len(fires(quarter_hours_of_that_hour, tz, before, before + 86_400_000)) == 4


@pytest.mark.parametrize(("tz", "start_utc"), [
    (BERLIN, utc(2026, 10, 24, 23)), (BERLIN, utc(2026, 3, 28, 23)),
    (NEW_YORK, utc(2026, 11, 1, 4)), (NEW_YORK, utc(2026, 3, 8, 5)),
    (SEOUL, utc(1987, 10, 10, 15)), (SEOUL, utc(1987, 5, 9, 15)),
])
def test_an_hourly_crontab_follows_elapsed_time_across_a_change(tz: ZoneInfo, start_utc: int) -> None:
    every_15 = crontab(minute="*/15")
    found = fires(every_15, tz, start_utc, start_utc + 4 * 3_600_000)
    assert found == [start_utc + i * 900_000 for i in range(1, 17)]


def test_a_half_hour_change_lord_howe() -> None:
    # 2026-04-05 02:00 (+11) falls back to 01:30 (+10:30): 01:30-01:59 happens twice.
    daily_0145 = crontab(minute=45, hour=1)
    before = at(LORD_HOWE, 2026, 4, 5) - 1
    assert fires(daily_0145, LORD_HOWE, before, before + 86_400_000) == [at(LORD_HOWE, 2026, 4, 5, 1, 45)]


def test_a_crontab_with_its_own_zone() -> None:
    seoul_9am = crontab(minute=0, hour=9, tz="Asia/Seoul")
    assert seoul_9am.next_after(utc(2026, 1, 1, 12), BERLIN) == utc(2026, 1, 2, 0)
    with pytest.raises(InvalidSchedule, match="tz="):
        crontab(tz="Mars/Olympus").validate()


def _reference_fires(cron: crontab, tz: ZoneInfo, start_ms: int, end_ms: int) -> list[int]:
    """The rules, checked the slow way: every minute of the window, one at a time."""
    minutes, hours = cron.minute, cron.hour
    days_of_week, days_of_month, months = cron.day_of_week, cron.day_of_month, cron.month_of_year

    def matches(wall: dt.datetime) -> bool:
        return (wall.minute in minutes and wall.hour in hours and wall.day in days_of_month
                and wall.month in months and (wall.weekday() + 1) % 7 in days_of_week)

    found = []
    m = start_ms - start_ms % 60_000 + 60_000
    while m <= end_ms:
        local = from_ms(m, tz)
        before = from_ms(m - 60_000, tz)
        if matches(local.replace(tzinfo=None)) and (local.fold == 0 or len(hours) == 24):
            found.append(m)
        elif local.utcoffset() != before.utcoffset() and local.replace(tzinfo=None) - before.replace(
                tzinfo=None) > dt.timedelta(minutes=1):
            # The clock jumped forward at m: the skipped wall times fire here, once.
            wall = before.replace(tzinfo=None) + dt.timedelta(minutes=1)
            while wall < local.replace(tzinfo=None):
                if matches(wall):
                    found.append(m)
                    break
                wall += dt.timedelta(minutes=1)
        m += 60_000
    return found


@pytest.mark.parametrize("tz", [BERLIN, NEW_YORK, SEOUL, LORD_HOWE])
@pytest.mark.parametrize("cron", [crontab(minute="*/7"), crontab(minute="10,40", hour="1-3"),
                                  crontab(minute=0, hour="*/2"), crontab(minute=30, hour=2)])
def test_against_minute_by_minute_reference(tz: ZoneInfo, cron: crontab) -> None:
    year = 1987 if tz is SEOUL else 2026
    days_with_a_change = 0
    for month in range(1, 13):
        # Only days with a change are interesting; find them by their offsets.
        day = dt.datetime(year, month, 1, tzinfo=UTC)
        while day.month == month:
            if day.astimezone(tz).utcoffset() != (day + dt.timedelta(days=1)).astimezone(tz).utcoffset():
                start = to_ms(day) - 3_600_000
                end = start + 30 * 3_600_000
                assert fires(cron, tz, start, end) == _reference_fires(cron, tz, start, end), (tz, day)
                days_with_a_change += 1
            day += dt.timedelta(days=1)
    assert days_with_a_change == 2


# --- properties ----------------------------------------------------------------------------

field_values = {
    "minute": st.sampled_from(["*", "*/15", "0", "30", "5,35", "0-10/5", "59"]),
    "hour": st.sampled_from(["*", "2", "1-3", "*/6", "0,12", "23"]),
    "day_of_week": st.sampled_from(["*", "mon-fri", "sun", "sat,sun", "wed"]),
    "day_of_month": st.sampled_from(["*", "1", "15", "28-31", "29", "31"]),
    "month_of_year": st.sampled_from(["*", "2", "1,7", "*/3", "12"]),
}
crontabs = st.builds(crontab, **field_values).filter(lambda c: c.error is None)
instants = st.integers(min_value=utc(1985, 1, 1), max_value=utc(2035, 1, 1))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(cron=crontabs, tz=st.sampled_from(ZONES), t=instants)
def test_next_and_last_agree(cron: crontab, tz: ZoneInfo, t: int) -> None:
    following = cron.next_after(t, tz)
    assert following > t
    assert cron.last_at_or_before(following, tz) == following
    latest = cron.last_at_or_before(following - 1, tz)
    assert latest is None or latest <= t  # nothing fires in (t, following)
    if latest is not None:
        assert cron.next_after(latest, tz) == following
    # The wall time of a fire matches the fields, unless it is the instant of a jump
    # standing in for skipped wall times.
    local = from_ms(following, tz)
    is_jump = from_ms(following - 1, tz).utcoffset() != local.utcoffset()
    assert is_jump or (local.minute in cron.minute and local.hour in cron.hour and local.day in cron.day_of_month
                       and local.month in cron.month_of_year and (local.weekday() + 1) % 7 in cron.day_of_week)


@settings(max_examples=200, deadline=None)
@given(period_ms=st.integers(min_value=100, max_value=10 * 86_400_000), t=instants)
def test_intervals_are_multiples_of_their_period(period_ms: int, t: int) -> None:
    every = schedule(period_ms / 1000)
    following = every.next_after(t, UTC)
    assert following % every.period_ms == 0
    assert t < following <= t + every.period_ms
    assert every.last_at_or_before(t, UTC) == following - every.period_ms


# --- zones and Celery's is_due -----------------------------------------------------------


def test_zone_for() -> None:
    assert zone_for(None) is UTC
    assert zone_for("Asia/Seoul") == SEOUL
    assert zone_for(BERLIN) is BERLIN
    assert zone_for(None, enable_utc=False) is not None  # the host's zone
    with pytest.raises(ConfigurationError, match="timezone 'Nowhere/Land' is unknown"):
        zone_for("Nowhere/Land")


def test_is_due_and_remaining_estimate_with_an_injected_clock() -> None:
    now = dt.datetime(2026, 1, 1, 10, 7, 30, tzinfo=UTC)
    quarter = crontab(minute="*/15", nowfun=lambda: now)
    assert quarter.is_due(dt.datetime(2026, 1, 1, 9, 50, tzinfo=UTC)) == (True, 450.0)
    assert quarter.is_due(dt.datetime(2026, 1, 1, 10, 5, tzinfo=UTC)) == (False, 450.0)
    assert quarter.remaining_estimate(dt.datetime(2026, 1, 1, 10, 5, tzinfo=UTC)) == dt.timedelta(seconds=450)
    every_minute = schedule(60, nowfun=lambda: now)
    assert every_minute.is_due(dt.datetime(2026, 1, 1, 10, 6, 59, tzinfo=UTC)) == (True, 30.0)
