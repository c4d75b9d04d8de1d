"""Beat in one process, with an injected clock: claiming ticks, missed ticks, overlap,
switches, run-now, bad entries, a lost broker, and the ``celeriac beat`` command."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from celeriac import Celery
from celeriac.beat import Beat, BeatConfigError, ops, plan_ticks, tick_id
from celeriac.beat.entries import config_entries
from celeriac.beat.loop import ConfigSource
from celeriac.cli import main
from celeriac.message import SUCCESS, ResultRecord
from celeriac.schedules import crontab, schedule

T0 = 1_700_035_200.0  # 2023-11-15T08:00:00Z (in the past: runs by hand use the real clock)


class Clock:
    def __init__(self, start_s: float = T0) -> None:
        self.now_s = start_s

    def __call__(self) -> float:
        return self.now_s

    @property
    def ms(self) -> int:
        return int(self.now_s * 1000)


def make_app(url: str, schedule_: dict[str, Any] | None = None, **settings: Any) -> Celery:
    app = Celery("beat-test", broker=url, set_as_current=False, **settings)

    @app.task(name="beat.ping")
    def ping(*args: Any, **kwargs: Any) -> None:
        return None

    @app.task(name="beat.quiet", ignore_result=True)
    def quiet() -> None:
        return None

    @app.task(name="beat.one_arg")
    def one_arg(x: int) -> int:
        return x

    app.conf.beat_schedule = schedule_ or {}
    return app


async def sent_ids(app: Celery, queue: str = "celery") -> list[str]:
    """Take every waiting message (as a worker would, then ack it) and return their ids."""
    broker = (await app.clients()).broker
    deliveries = await broker.reserve([queue], 10_000, lease_ms=60_000, worker_id="test", timeout_s=0)
    if deliveries:
        assert not await broker.ack(deliveries)
    return [d.task_id for d in deliveries]


async def run_beats(beats: list[tuple[Beat, Clock]], seconds: int, step_s: float = 0.25) -> None:
    """Move every beat's clock on by ``step_s`` and let each look, for ``seconds``."""
    for _ in range(int(seconds / step_s)):
        for beat, clock in beats:
            clock.now_s += step_s
            await beat.tick()


@pytest.fixture
def memory_url() -> str:
    return f"memory://{uuid.uuid4().hex}"


# --- the plan: which ticks fire --------------------------------------------------------


@pytest.mark.parametrize(("handled_s", "now_s", "missed", "fired_s", "latest_missed_s"), [
    (9, 10.01, "run_once", [10], None),  # on time
    (9, 10.9, "skip", [10], None),
    (10, 11.5, "run_once", [11], None),
    (9, 11.5, "run_once", [10, 11], 10),  # a hiccup of 1.5 periods: the one missed goes too
    (9, 11.5, "skip", [11], 10),
    (0, 10.0, "run_once", [9, 10], 9),  # on a tick, the one before is a period old: missed
    (0, 3600.4, "run_once", [3599, 3600], 3599),  # an hour with no beat: the latest missed + the on-time one
    (0, 3600.4, "skip", [3600], 3599),
    (0, 3, "run_once", [2, 3], 2),
    (5, 5.5, "run_once", [], None),  # nothing new
    (5, 5.5, "skip", [], None),
])
def test_plan_ticks_for_an_interval(handled_s: float, now_s: float, missed: str, fired_s: list[int],
                                    latest_missed_s: int | None) -> None:
    ticks, latest_missed = plan_ticks(schedule(1), dt.UTC, int(handled_s * 1000), int(now_s * 1000), missed, 5000)
    assert ticks == [s * 1000 for s in fired_s]
    assert latest_missed == (latest_missed_s * 1000 if latest_missed_s is not None else None)


def test_plan_ticks_for_a_daily_crontab() -> None:
    daily = crontab(minute=30, hour=2)
    day = int(dt.datetime(2027, 1, 15, tzinfo=dt.UTC).timestamp() * 1000)
    tick = day + (2 * 60 + 30) * 60_000
    assert plan_ticks(daily, dt.UTC, day, tick + 100, "skip", 5000) == ([tick], None)
    # Three days with no beat, started at noon: one run of the latest tick, or none.
    assert plan_ticks(daily, dt.UTC, day - 3 * 86_400_000, day + 12 * 3_600_000, "run_once", 5000) == (
        [tick], tick)
    assert plan_ticks(daily, dt.UTC, day - 3 * 86_400_000, day + 12 * 3_600_000, "skip", 5000) == ([], tick)


def test_tick_ids_come_from_the_name_and_fire_time() -> None:
    assert tick_id("a", 1000) == tick_id("a", 1000)
    assert len({tick_id("a", 1000), tick_id("a", 2000), tick_id("b", 1000)}) == 3
    assert uuid.UUID(tick_id("a", 1000)).version == 5


# --- the claim: one message per tick, on every broker ---------------------------------


async def test_several_beats_send_each_tick_once(backend_url: str) -> None:
    app = make_app(backend_url, {"every-second": {"task": "beat.ping", "schedule": 1.0},
                                 "every-minute": {"task": "beat.ping", "schedule": crontab()}})
    # Three beats whose clocks disagree by up to 400 ms; each looks every 250 ms.
    beats = [(Beat(app, clock=(clock := Clock(T0 + skew)), handle_signals=False), clock) for skew in (0, 0.15, 0.4)]
    for beat, _ in beats:
        await beat.prepare()
    await run_beats(beats, 70)
    ids = await sent_ids(app)
    assert len(ids) == len(set(ids))
    # The first beat saw the entries first: every tick after T0 up to where all clocks got.
    expected = {tick_id("every-second", int(T0 * 1000) + i * 1000) for i in range(1, 71)}
    expected |= {tick_id("every-minute", int(T0 * 1000) + 60_000)}
    assert set(ids) == expected


async def test_a_tick_that_already_ran_is_not_sent_again(backend_url: str) -> None:
    """The claim outlives the run: a beat that froze and wakes up late sends nothing."""
    app = make_app(backend_url, {"e": {"task": "beat.ping", "schedule": 10}})
    awake_clock, frozen_clock = Clock(), Clock()
    awake = Beat(app, clock=awake_clock, handle_signals=False)
    frozen = Beat(app, clock=frozen_clock, handle_signals=False)
    await awake.prepare()
    await frozen.prepare()
    awake_clock.now_s += 10
    await awake.tick()
    assert await sent_ids(app) == [tick_id("e", int(T0 * 1000) + 10_000)]  # sent, run, acknowledged
    frozen_clock.now_s += 10.5  # wakes after the run, within the tick's grace
    await frozen.tick()
    assert await sent_ids(app) == []


async def test_concurrent_publishes_of_one_tick_store_one_message(backend_url: str) -> None:
    app = make_app(backend_url, {"e": {"task": "beat.ping", "schedule": 1}})
    entry = config_entries(app)[0]
    fire_ms = int(T0 * 1000)

    async def one_beat() -> None:
        clients = app.new_clients()  # its own connection, as a separate beat would have
        await clients.broker.connect()
        try:
            await clients.broker.publish([entry.message(app, fire_ms, 86400)], on_duplicate="ignore")
        finally:
            await clients.broker.close()

    await asyncio.gather(*(one_beat() for _ in range(8)))
    assert await sent_ids(app) == [tick_id("e", fire_ms)]


async def test_tick_messages_carry_the_entry_and_fire_time(memory_url: str) -> None:
    app = make_app(memory_url, {"e": {"task": "beat.ping", "schedule": 1, "args": [1, "a"], "kwargs": {"k": 2},
                                      "options": {"priority": 7, "headers": {"mine": 1}}}})
    entry = config_entries(app)[0]
    message = entry.message(app, 5000, 86400)
    from celeriac.message import decode_envelope

    envelope = decode_envelope(message.body, frozenset({"json"}))
    assert (envelope.id, envelope.task, envelope.args, envelope.kwargs, envelope.priority) == (
        tick_id("e", 5000), "beat.ping", [1, "a"], {"k": 2}, 7)
    assert envelope.headers == {"mine": 1, "periodic_task_name": "e", "periodic_fire_ms": 5000}
    assert message.unique_for_s == 86400


async def test_routes_decide_the_queue(memory_url: str) -> None:
    app = make_app(memory_url, {"e": {"task": "beat.ping", "schedule": 1}}, task_routes={"beat.*": "periodic"})
    clock = Clock()
    beat = Beat(app, clock=clock, handle_signals=False)
    await beat.prepare()
    clock.now_s += 1
    await beat.tick()
    assert await sent_ids(app, "periodic") == [tick_id("e", int(T0 * 1000) + 1000)]


# --- missed ticks ----------------------------------------------------------------------


@pytest.mark.parametrize(("missed", "expected_after_gap"), [("run_once", [59, 60]), ("skip", [60])])
async def test_after_a_time_with_no_beat(memory_url: str, missed: str, expected_after_gap: list[int]) -> None:
    app = make_app(memory_url, {"e": {"task": "beat.ping", "schedule": 1, "missed": missed}})
    clock = Clock()
    first = Beat(app, clock=clock, handle_signals=False)
    await first.prepare()
    await run_beats([(first, clock)], 3, step_s=1)
    base = int(T0 * 1000)
    assert await sent_ids(app) == [tick_id("e", base + i * 1000) for i in (1, 2, 3)]
    # No beat for a minute; then one starts, a little after a tick.
    clock.now_s = T0 + 60.2
    second = Beat(app, clock=clock, handle_signals=False)
    await second.prepare()
    await second.tick()
    assert await sent_ids(app) == [tick_id("e", base + s * 1000) for s in expected_after_gap]
    await run_beats([(second, clock)], 3, step_s=1)
    assert await sent_ids(app) == [tick_id("e", base + s * 1000) for s in (61, 62, 63)]


async def test_a_new_entry_does_not_fire_for_the_past(memory_url: str) -> None:
    app = make_app(memory_url, {"daily": {"task": "beat.ping", "schedule": crontab(minute=0, hour=3)}})
    clock = Clock(T0 + 3600)  # 09:00 UTC, long after today's 03:00
    beat = Beat(app, clock=clock, handle_signals=False)
    await beat.prepare()
    await beat.tick()
    assert await sent_ids(app) == []
    # Next morning it fires; a beat restarted after that does not fire it again.
    clock.now_s = T0 + 19 * 3600 + 0.5
    await beat.tick()
    tomorrow_3am = int(T0 * 1000) + 19 * 3_600_000
    assert await sent_ids(app) == [tick_id("daily", tomorrow_3am)]
    again = Beat(app, clock=clock, handle_signals=False)
    await again.prepare()
    await again.tick()
    assert await sent_ids(app) == []


async def test_a_daily_tick_missed_for_days_runs_once(memory_url: str, caplog: pytest.LogCaptureFixture) -> None:
    app = make_app(memory_url, {"daily": {"task": "beat.ping", "schedule": crontab(minute=0, hour=3)}})
    clock = Clock()
    beat = Beat(app, clock=clock, handle_signals=False)
    await beat.prepare()
    clock.now_s = T0 + 4 * 86400  # four days later
    restarted = Beat(app, clock=clock, handle_signals=False)
    await restarted.prepare()
    with caplog.at_level(logging.WARNING, "celeriac.beat"):
        await restarted.tick()
    assert await sent_ids(app) == [tick_id("daily", int(T0 * 1000) + (4 * 24 - 5) * 3_600_000)]
    assert "could not send its ticks from" in caplog.text and "sends the latest now, once" in caplog.text


# --- overlap -----------------------------------------------------------------------------


async def test_overlap_skip_waits_for_the_previous_run(memory_url: str) -> None:
    app = make_app(memory_url, {"e": {"task": "beat.ping", "schedule": 1, "overlap": "skip"}})
    clock = Clock()
    beat = Beat(app, clock=clock, handle_signals=False)
    await beat.prepare()
    base = int(T0 * 1000)
    await run_beats([(beat, clock)], 3, step_s=1)
    first = tick_id("e", base + 1000)
    assert await sent_ids(app) == [first]  # ticks 2 and 3 skipped: the first has no result yet
    store = await app.result_store()
    await store.store([ResultRecord(task_id=first, state=SUCCESS, fencing_token=1)])
    await run_beats([(beat, clock)], 2, step_s=1)
    assert await sent_ids(app) == [tick_id("e", base + 4000)]


async def test_a_run_by_hand_becomes_the_previous_run(memory_url: str) -> None:
    """A tick purged from its queue never finishes; running the entry by hand unblocks it."""
    app = make_app(memory_url, {"e": {"task": "beat.ping", "schedule": 1, "overlap": "skip"}})
    clock = Clock()
    beat = Beat(app, clock=clock, handle_signals=False)
    await beat.prepare()
    await run_beats([(beat, clock)], 2, step_s=1)
    assert len(await sent_ids(app)) == 1  # taken and never finished: as if purged
    by_hand = await ops.run_now(app, ConfigSource(app), "e")
    assert await sent_ids(app) == [by_hand]
    await (await app.result_store()).store([ResultRecord(task_id=by_hand, state=SUCCESS, fencing_token=1)])
    await run_beats([(beat, clock)], 1, step_s=1)
    assert await sent_ids(app) == [tick_id("e", int(clock.now_s) * 1000)]


async def test_overlap_skip_sees_a_run_sent_by_another_beat(memory_url: str) -> None:
    app = make_app(memory_url, {"e": {"task": "beat.ping", "schedule": 1, "overlap": "skip"}})
    clock_a, clock_b = Clock(), Clock()
    a, b = Beat(app, clock=clock_a, handle_signals=False), Beat(app, clock=clock_b, handle_signals=False)
    await a.prepare()
    await b.prepare()
    clock_a.now_s += 1
    await a.tick()  # only a sends tick 1; b was busy
    clock_b.now_s += 2
    clock_a.now_s += 1
    await b.tick()
    await a.tick()
    assert await sent_ids(app) == [tick_id("e", int(T0 * 1000) + 1000)]


# --- switches and runs by hand ------------------------------------------------------------


async def test_disable_and_enable_reach_running_beats(memory_url: str) -> None:
    app = make_app(memory_url, {"e": {"task": "beat.ping", "schedule": 1}})
    clock = Clock()
    beat = Beat(app, clock=clock, handle_signals=False, sync_s=2)
    await beat.prepare()
    source = ConfigSource(app)
    await ops.switch(app, source, "e", False)
    await run_beats([(beat, clock)], 10, step_s=1)
    # Read within sync_s: at most two ticks before the switch was seen.
    assert len(await sent_ids(app)) <= 2
    await run_beats([(beat, clock)], 10, step_s=1)
    assert await sent_ids(app) == []
    await ops.switch(app, source, "e", True)
    await run_beats([(beat, clock)], 10, step_s=1)
    sent = await sent_ids(app)
    assert 8 <= len(sent) <= 10  # the off time is not missed: no extra tick for it
    assert sent[-1] == tick_id("e", int(clock.now_s) * 1000)
    views = await ops.list_entries(app, source)
    assert views[0].enabled


async def test_an_entry_disabled_in_the_settings_never_fires(memory_url: str) -> None:
    app = make_app(memory_url, {"e": {"task": "beat.ping", "schedule": 1, "enabled": False}})
    clock = Clock()
    beat = Beat(app, clock=clock, handle_signals=False)
    await beat.prepare()
    await run_beats([(beat, clock)], 5, step_s=1)
    assert await sent_ids(app) == []


async def test_run_now_and_list(backend_url: str) -> None:
    # On every server: beat's records carry times in epoch ms as their fencing tokens.
    app = make_app(backend_url, {"e": {"task": "beat.ping", "schedule": crontab(minute=0, hour=3), "args": [1]}},
                   timezone="Asia/Seoul")
    source = ConfigSource(app)
    task_id = await ops.run_now(app, source, "e")
    assert await sent_ids(app) == [task_id]
    [view] = await ops.list_entries(app, source)
    assert view.last_task_id == task_id and view.last_was_manual and view.last_state == "PENDING"
    assert view.schedule == "at 03:00 every day" and view.enabled
    assert view.next_fire is not None and view.next_fire.endswith("T03:00:00+09:00")
    with pytest.raises(Exception, match="no beat entry is named 'nope'; the entries are: 'e'"):
        await ops.run_now(app, source, "nope")
    await ops.switch(app, source, "e", False)
    [view] = await ops.list_entries(app, source)
    assert not view.enabled and view.last_task_id == task_id
    await app.close()


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(("entry", "message"), [
    ({"task": "beat.nope", "schedule": 1}, "beat entry 'bad': task: 'beat.nope' is not a registered task"),
    ({"task": "beat.ping", "schedule": crontab(hour=25)},
     "beat entry 'bad': schedule: crontab hour=25 is invalid: 25 is out of range 0-23"),
    ({"task": "beat.ping", "schedule": crontab(day_of_week="funday")},
     "beat entry 'bad': schedule: crontab day_of_week='funday' is invalid"),
    ({"task": "beat.ping", "schedule": 0.05}, "beat entry 'bad': schedule: an interval of 0.05 s is under the minimum"),
    ({"task": "beat.ping", "schedule": "every day"}, "beat entry 'bad': schedule: expected seconds, a timedelta"),
    ({"task": "beat.ping", "schedule": 1, "args": [object()]}, "beat entry 'bad': args: argument 0 of beat.ping"),
    ({"task": "beat.ping", "schedule": 1, "kwargs": {"when": object()}},
     "beat entry 'bad': kwargs: keyword argument 'when' of beat.ping"),
    ({"task": "beat.one_arg", "schedule": 1, "args": [1, 2]}, "beat entry 'bad': args: beat.one_arg() called with "
                                                              "wrong arguments"),
    ({"task": "beat.ping", "schedule": 1, "args": "abc"}, "beat entry 'bad': args: expected a list or tuple"),
    ({"task": "beat.ping", "shedule": 1}, "beat entry 'bad': shedule: unknown key"),
    ({"task": "beat.ping"}, "beat entry 'bad': schedule: missing"),
    ({"schedule": 1}, "beat entry 'bad': task: missing"),
    ({"task": "beat.ping", "schedule": 1, "options": {"task_id": "x"}}, "beat entry 'bad': options.task_id: beat sets"),
    ({"task": "beat.ping", "schedule": 1, "options": {"qeueu": "x"}}, "beat entry 'bad': options.qeueu: not an"),
    ({"task": "beat.ping", "schedule": 1, "options": {"priority": 12}}, "beat entry 'bad': options: priority 12"),
    ({"task": "beat.ping", "schedule": 1, "missed": "catch_up"}, "beat entry 'bad': missed: 'catch_up' is not one of"),
    ({"task": "beat.quiet", "schedule": 1, "overlap": "skip"}, "beat entry 'bad': overlap: 'skip' needs the previous"),
])
def test_bad_entries_name_the_entry_and_the_field(memory_url: str, entry: dict[str, Any], message: str) -> None:
    app = make_app(memory_url, {"good": {"task": "beat.ping", "schedule": 1}, "bad": entry})
    with pytest.raises(BeatConfigError) as caught:
        config_entries(app)
    assert str(caught.value).startswith(message), str(caught.value)


def test_two_different_entries_under_one_name(memory_url: str) -> None:
    app = make_app(memory_url, {"cleanup": {"task": "beat.ping", "schedule": 60}})
    app.add_periodic_task(30.0, app.tasks["beat.ping"].s(), name="cleanup")
    with pytest.raises(BeatConfigError, match=r"beat entry 'cleanup': name: two different entries have this name "
                                              r"\(one from beat_schedule, one from add_periodic_task at .*test_beat"):
        config_entries(app)


def test_the_same_entry_added_twice_is_one(memory_url: str) -> None:
    app = make_app(memory_url)
    for _ in range(2):
        app.add_periodic_task(30.0, app.tasks["beat.ping"].s(1), name="twice")
    assert [e.name for e in config_entries(app)] == ["twice"]


async def test_add_periodic_task_from_on_after_configure(memory_url: str) -> None:
    app = make_app(memory_url)

    @app.on_after_configure.connect
    def setup_periodic_tasks(sender: Celery, **kwargs: Any) -> None:
        sender.add_periodic_task(10.0, sender.tasks["beat.ping"].s("hello"), name="add every 10")
        sender.add_periodic_task(crontab(hour=7, minute=30, day_of_week=1), sender.tasks["beat.ping"].s("monday"))

    clock = Clock()
    beat = Beat(app, clock=clock, handle_signals=False)
    await beat.prepare()
    assert set(beat.slots) == {"add every 10", "beat.ping('monday')"}
    clock.now_s += 10
    await beat.tick()
    assert await sent_ids(app) == [tick_id("add every 10", int(T0 * 1000) + 10_000)]


async def test_a_receiver_that_raises_stops_beat_at_start(memory_url: str) -> None:
    app = make_app(memory_url)

    @app.on_after_finalize.connect
    def broken(sender: Celery, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    with pytest.raises(Exception, match="receiver raised RuntimeError"):
        await Beat(app, handle_signals=False).prepare()


# --- a lost broker -------------------------------------------------------------------------


async def test_a_lost_broker_is_retried_with_back_off(memory_url: str, caplog: pytest.LogCaptureFixture) -> None:
    app = make_app(memory_url, {"e": {"task": "beat.ping", "schedule": 1}})
    clock = Clock()
    beat = Beat(app, clock=clock, handle_signals=False)
    await beat.prepare()
    assert beat.broker is not None
    real_publish = beat.broker.publish
    attempts: list[float] = []

    async def down(*args: Any, **kwargs: Any) -> None:
        attempts.append(clock.now_s)
        raise ConnectionError("connection refused")

    beat.broker.publish = down  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, "celeriac.beat"):
        await run_beats([(beat, clock)], 20, step_s=0.25)
        # Attempts space out (0.5 s, 1 s, 2 s, 4 s, 8 s ...), and the outage is logged once.
        gaps = [b - a for a, b in itertools.pairwise(attempts)]
        assert gaps == sorted(gaps) and len(attempts) <= 7
        assert caplog.text.count("beat cannot send ticks (ConnectionError: connection refused)") == 1
        beat.broker.publish = real_publish  # type: ignore[method-assign]
        await run_beats([(beat, clock)], 20, step_s=0.25)
        assert "reached the broker again" in caplog.text
    sent = await sent_ids(app)
    base = int(T0 * 1000)
    # Back: the latest missed tick once (run_once), the on-time ones, and no burst.
    assert len(sent) <= 22
    assert sent[-1] == tick_id("e", base + 40_000)
    assert tick_id("e", base + 5000) not in sent


# --- the command ---------------------------------------------------------------------------

cli_app = make_app(f"memory://{uuid.uuid4().hex}")


@pytest.fixture
def cli_schedule() -> Iterator[Celery]:
    cli_app.conf.broker_url = f"memory://{uuid.uuid4().hex}"
    cli_app.conf.beat_schedule = {
        "nightly": {"task": "beat.ping", "schedule": crontab(minute=30, hour=2)},
        "often": {"task": "beat.ping", "schedule": 15},
    }
    yield cli_app
    cli_app.conf.beat_schedule = {}


def invoke(*args: str) -> Any:
    return CliRunner(env={"COLUMNS": "200"}).invoke(main, ["-A", f"{__name__}:cli_app", *args], catch_exceptions=False)


def test_beat_list_json_enable_disable_run_now(cli_schedule: Celery) -> None:
    listed = invoke("beat", "--list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = {row["name"]: row for row in json.loads(listed.output)}
    assert rows["nightly"]["schedule"] == "at 02:30 every day" and rows["nightly"]["enabled"]
    assert rows["often"]["schedule"] == "every 15 seconds" and rows["often"]["last_fire"] is None
    assert invoke("beat", "--disable", "often").output == "disabled often\n"
    sent = invoke("beat", "--run-now", "nightly")
    assert sent.exit_code == 0 and sent.output.startswith("sent nightly: ")
    rows = {row["name"]: row for row in json.loads(invoke("beat", "--list", "--json").output)}
    assert not rows["often"]["enabled"] and rows["often"]["next_fire"] is None
    assert rows["nightly"]["last_task_id"] == sent.output.split()[-1] and rows["nightly"]["last_was_manual"]
    table = invoke("beat", "--list")
    assert "nightly" in table.output and "disabled" in table.output and "every 15 seconds" in table.output
    assert invoke("beat", "--enable", "often").output == "enabled often\n"
    unknown = invoke("beat", "--enable", "nope")
    assert unknown.exit_code == 1 and "no beat entry is named 'nope'" in unknown.output


def test_bad_entry_is_one_line_at_start(cli_schedule: Celery) -> None:
    cli_app.conf.beat_schedule = {"broken": {"task": "beat.ping", "schedule": crontab(minute="*/0")}}
    result = invoke("beat")
    assert result.exit_code == 1
    assert result.output.strip() == ("Error: beat entry 'broken': schedule: crontab minute='*/0' is invalid: "
                                     "step '0' in '*/0' must be a whole number of at least 1")
    worker = invoke("worker", "-B")
    assert worker.exit_code == 1 and "Error: beat entry 'broken'" in worker.output


def test_celerys_dotted_app_path(cli_schedule: Celery) -> None:
    """``celery -A path.to.celery.app beat`` runs with only the command name changed."""
    result = CliRunner().invoke(main, ["-A", f"{__name__}.cli_app", "beat", "--list", "--json"])
    assert result.exit_code == 0, result.output
    assert {row["name"] for row in json.loads(result.output)} == {"nightly", "often"}


def test_unknown_scheduler(cli_schedule: Celery) -> None:
    result = invoke("beat", "--scheduler", "redbeat.RedBeatScheduler")
    assert result.exit_code == 1 and "beat scheduler 'redbeat.RedBeatScheduler' is unknown" in result.output
