"""``celeriac beat --scheduler django``: periodic tasks in the test database, edited live."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from celeriac import Celery
from celeriac.beat import Beat, tick_id
from celeriac.beat.ops import make_source
from celeriac.contrib.django.beat_scheduler import DatabaseSource, entry_of, note_fires
from celeriac.contrib.django.models import PeriodicTask
from celeriac.schedules import crontab, schedule

pytestmark = pytest.mark.django_db(transaction=True)  # beats read the rows from other threads

TASK = "checks.tasks.check_registration_number"


class Clock:
    def __init__(self) -> None:
        self.now_s = float(int(time.time()) + 1)  # a whole second, just after the rows' edits

    def __call__(self) -> float:
        return self.now_s


async def sent(app: Celery) -> list[str]:
    broker = (await app.clients()).broker
    deliveries = await broker.reserve(["celery", "slow"], 1000, lease_ms=60_000, worker_id="test", timeout_s=0)
    if deliveries:
        await broker.ack(deliveries)
    return [d.task_id for d in deliveries]


async def step(beat: Beat, clock: Clock, seconds: float, step_s: float = 0.5) -> None:
    for _ in range(int(seconds / step_s)):
        clock.now_s += step_s
        await beat.tick()


def row(**fields: Any) -> PeriodicTask:
    fields.setdefault("task", TASK)
    fields.setdefault("args", ["1208801280"])
    return PeriodicTask.objects.create(**fields)


def test_the_model_and_its_migration_agree() -> None:
    call_command("makemigrations", "celeriac", "--check", "--dry-run", verbosity=0)


def test_rows_become_entries(app: Celery) -> None:
    interval = row(name="often", every=2, period="minutes", queue="slow", priority=7, expire_seconds=30,
                   missed="skip", overlap="skip")
    cron = row(name="nightly", crontab="30 2 * * mon-fri", crontab_timezone="Asia/Seoul",
               start_time=timezone.now() + dt.timedelta(days=1))
    often = entry_of(app, interval)
    assert often.schedule == schedule(120) and often.options == {"queue": "slow", "priority": 7, "expires": 30}
    assert (often.missed, often.overlap, often.source) == ("skip", "skip", "django")
    nightly = entry_of(app, cron)
    assert nightly.schedule == crontab(30, 2, "mon-fri", tz="Asia/Seoul")
    assert nightly.baseline_ms == int(cron.start_time.timestamp() * 1000) - 1  # no tick before its start
    assert str(cron) == "nightly: at 02:30 on Mon-Fri (Asia/Seoul)"


@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"crontab": "61 * * * *"}, "crontab", "crontab minute='61' is invalid: 61 is out of range 0-59"),
    ({"crontab": "* * *"}, "crontab", "expected five fields"),
    ({"every": 0.05}, "every", "under the minimum"),
    ({"every": 5, "crontab": "* * * * *"}, "crontab", "not both"),
    ({}, "every", "not both and not neither"),
    ({"crontab": "0 3 * * *", "crontab_timezone": "Mars/Olympus"}, "crontab_timezone", "is unknown"),
    ({"every": 5, "task": "checks.tasks.nope"}, "task", "is not a registered task"),
    ({"every": 5, "args": [1, 2, 3]}, "args", "called with wrong arguments"),
])
def test_the_form_refuses_what_beat_would(broker_url: str, fields: dict[str, Any], field: str, message: str) -> None:
    candidate = PeriodicTask(name="candidate", task=fields.pop("task", TASK), args=fields.pop("args", ["1"]),
                             **fields)
    with pytest.raises(ValidationError) as caught:
        candidate.full_clean()
    assert message in " ".join(caught.value.message_dict[field])


def moment(clock: Clock) -> dt.datetime:
    """The injected clock's now, as an edit's date_changed."""
    return dt.datetime.fromtimestamp(clock.now_s, dt.UTC)


async def test_beat_reads_rows_and_picks_up_edits(broker_url: str, app: Celery) -> None:
    clock = Clock()
    await PeriodicTask.objects.acreate(name="every-2s", task=TASK, args=["1208801280"], every=2)
    await PeriodicTask.objects.filter(name="every-2s").aupdate(date_changed=moment(clock))
    beat = Beat(app, source=DatabaseSource(app), clock=clock, handle_signals=False, sync_s=1)
    await beat.prepare()
    await step(beat, clock, 6)
    first = await sent(app)
    assert len(first) == 3 and first[-1] == tick_id("every-2s", int(clock.now_s - clock.now_s % 2) * 1000)

    # An edit in the admin (at the injected clock's now): a new interval, seen by the
    # running beat within its sync; its ticks before the edit are not missed ones.
    await PeriodicTask.objects.filter(name="every-2s").aupdate(every=1, date_changed=moment(clock))
    await step(beat, clock, 6)
    assert len(await sent(app)) == 6
    assert beat.slots["every-2s"].entry.schedule == schedule(1)

    # Switched off in the admin, then deleted: nothing more.
    await PeriodicTask.objects.filter(name="every-2s").aupdate(enabled=False, date_changed=moment(clock))
    await step(beat, clock, 2)
    await sent(app)
    await step(beat, clock, 4)
    assert await sent(app) == []
    await PeriodicTask.objects.filter(name="every-2s").adelete()
    await step(beat, clock, 2)
    assert "every-2s" not in beat.slots

    # A row added while beat runs fires from its creation on, not before.
    created = await PeriodicTask.objects.acreate(name="new", task=TASK, args=["1208801280"], every=1, queue="slow")
    await PeriodicTask.objects.filter(pk=created.pk).aupdate(date_changed=moment(clock))
    await step(beat, clock, 4)
    assert len(await sent(app)) == 4


async def test_rows_note_their_runs_once_and_one_offs_switch_off(broker_url: str, app: Celery) -> None:
    clock = Clock()
    await PeriodicTask.objects.acreate(name="once", task=TASK, args=["1208801280"], every=1, one_off=True)
    await PeriodicTask.objects.filter(name="once").aupdate(date_changed=moment(clock))
    beats = [Beat(app, source=DatabaseSource(app), clock=clock, handle_signals=False, sync_s=1) for _ in range(2)]
    for beat in beats:
        await beat.prepare()
    for _ in range(8):
        clock.now_s += 0.5
        for beat in beats:
            await beat.tick()
    assert len(await sent(app)) == 1
    noted = await PeriodicTask.objects.aget(name="once")
    assert noted.total_run_count == 1 and not noted.enabled  # two beats noted it; it counts once
    assert noted.last_task_id == tick_id("once", int(noted.last_run_at.timestamp() * 1000))


def test_a_bad_row_is_left_out_and_the_rest_runs(broker_url: str, app: Celery, caplog: Any) -> None:
    row(name="good", every=5)
    PeriodicTask.objects.bulk_create([PeriodicTask(name="bad", task=TASK, args=["1"], crontab="99 * * * *")])
    from celeriac._bridge import run_sync

    entries = run_sync(DatabaseSource(app).load())
    assert [e.name for e in entries] == ["good"]
    assert "beat entry 'bad': crontab: crontab minute='99' is invalid" in caplog.text


def test_note_fires_never_moves_back() -> None:
    row(name="e", every=5)
    later, earlier = 1_900_000_010_000, 1_900_000_000_000
    from celeriac.beat.state import Fire

    note_fires([Fire("e", later, "t2")])
    note_fires([Fire("e", earlier, "t1")])
    noted = PeriodicTask.objects.get(name="e")
    assert noted.last_task_id == "t2" and noted.total_run_count == 1


def test_scheduler_spellings(app: Celery) -> None:
    for name in ("django", "django_celery_beat.schedulers:DatabaseScheduler",
                 "django_celery_beat.schedulers.DatabaseScheduler"):
        assert isinstance(make_source(app, name), DatabaseSource)


def test_manage_py_celeriac_beat_list(broker_url: str, capsys: Any) -> None:
    row(name="nightly", crontab="0 3 * * *")
    row(name="off", every=30, enabled=False)
    call_command("celeriac", "beat", "--scheduler", "django", "--list", "--json")
    listed = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert listed["nightly"]["schedule"] == "at 03:00 every day" and listed["nightly"]["source"] == "django"
    assert not listed["off"]["enabled"]
    call_command("celeriac", "beat", "-S", "django", "--enable", "off")
    assert PeriodicTask.objects.get(name="off").enabled


def test_admin_pages_and_actions(broker_url: str, app: Celery, admin_client: Client) -> None:
    entry = row(name="nightly", crontab="0 3 * * *")
    assert admin_client.get("/admin/celeriac/periodictask/").status_code == 200
    assert admin_client.get(f"/admin/celeriac/periodictask/{entry.pk}/change/").status_code == 200
    assert admin_client.get("/admin/celeriac/periodictask/add/").status_code == 200
    changelist = "/admin/celeriac/periodictask/"
    response = admin_client.post(changelist, {"action": "run_now", "_selected_action": [entry.pk]}, follow=True)
    assert response.status_code == 200 and b"Sent nightly" in response.content
    from celeriac._bridge import run_sync

    [task_id] = run_sync(sent(app))
    entry.refresh_from_db()
    assert entry.last_task_id == task_id and entry.total_run_count == 1
    admin_client.post(changelist, {"action": "disable", "_selected_action": [entry.pk]})
    entry.refresh_from_db()
    assert not entry.enabled
    # Adding through the form: the crontab is checked before it is saved.
    response = admin_client.post("/admin/celeriac/periodictask/add/", {
        "name": "typo", "task": TASK, "crontab": "0 25 * * *", "period": "seconds", "args": '["1"]', "kwargs": "{}",
        "missed": "run_once", "overlap": "allow", "enabled": "on"})
    assert response.status_code == 200 and b"25 is out of range 0-23" in response.content
    assert not PeriodicTask.objects.filter(name="typo").exists()
