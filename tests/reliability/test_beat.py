"""Several real beats and a worker: every tick runs exactly once while beats die and freeze.

Three ``celeriac beat`` processes send the same schedule (a 1-second interval and an
every-minute crontab), and so does a ``celeriac worker -B``, which also runs the ticks.
One beat is SIGKILLed early, another SIGSTOPped for a fifth of the run and then resumed.
Each run logs its entry and fire time; every tick in the window must run once: none
twice, none missing. ``CELERIAC_BEAT_RUN_S`` sets the run's length (15 s here; 120 s is
the issue's scenario).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest

from celeriac.beat import tick_id

from .conftest import HERE, Run, WorkerProcess

pytestmark = pytest.mark.reliability
RUN_S = float(os.environ.get("CELERIAC_BEAT_RUN_S", "15"))


def start(run: Run, ready_marker: str, *args: str) -> WorkerProcess:
    cmd = [sys.executable, "-m", "celeriac", "-A", "tests.reliability.beat_app", *args, "--loglevel=INFO"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=run.env(),
                            start_new_session=True, cwd=HERE.parent.parent)
    started = WorkerProcess(proc)

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            started.lines.append(line)
            if ready_marker in line:
                started.ready.set()

    threading.Thread(target=pump, daemon=True).start()
    run.workers.append(started)  # the fixture kills whatever is left
    if not started.ready.wait(30):
        raise AssertionError(f"{args[0]} never became ready:\n{started.output()}")
    return started


def runs(run: Run) -> Counter[tuple[str, int, str]]:
    """How often each (entry, fire ms, task id) ran."""
    if not run.log_path.exists():
        return Counter()
    found: Counter[tuple[str, int, str]] = Counter()
    for line in run.log_path.read_text().splitlines():
        _, entry, fire_ms, task_id, _pid = line.split()
        found[(entry, int(fire_ms), task_id)] += 1
    return found


def test_every_tick_runs_once_while_beats_die_and_freeze(run: Run) -> None:
    worker = start(run, " ready: queues", "worker", "-B", "-c", "20")
    killed = start(run, " ready: 2 entries", "beat")
    frozen = start(run, " ready: 2 entries", "beat")
    steady = start(run, " ready: 2 entries", "beat")
    began_ms = int(time.time() * 1000)
    # The subject is wall-clock ticks: the beats must be seen running, dying and frozen.
    time.sleep(RUN_S * 0.2)
    killed.signal_group(signal.SIGKILL)
    time.sleep(RUN_S * 0.1)
    frozen.signal_group(signal.SIGSTOP)
    time.sleep(RUN_S * 0.2)  # a fifth of the run, with one beat dead and one frozen
    frozen.signal_group(signal.SIGCONT)
    time.sleep(RUN_S * 0.5)
    ended_ms = int(time.time() * 1000)
    for beat in (frozen, steady):
        beat.signal_group(signal.SIGTERM)
        assert beat.wait(30) == 0, beat.output()

    last_expected = ended_ms - 1500  # a tick this close to the end may still be on its way
    run.wait_for(lambda: any(e == "every-second" and f >= last_expected for e, f, _ in runs(run)),
                 what="the last ticks to run")
    worker.signal_group(signal.SIGTERM)
    assert worker.wait(60) == 0, worker.output()

    counted = runs(run)
    doubled = {key: n for key, n in counted.items() if n > 1}
    assert not doubled, f"ticks run more than once: {doubled}"
    for (entry, fire_ms, task_id) in counted:
        assert task_id == tick_id(entry, fire_ms)  # the id is the occurrence key
    seconds = sorted(f for e, f, _ in counted if e == "every-second")
    first = seconds[0]
    # The first beat to start fired from its next tick on; none before, none skipped after.
    assert first <= began_ms + 1000
    expected = list(range(first, last_expected + 1, 1000))
    assert [f for f in seconds if f <= last_expected] == expected, "a tick is missing"
    minutes = sorted(f for e, f, _ in counted if e == "every-minute")
    expected_minutes = [m for m in range(first - first % 60_000, last_expected + 1, 60_000) if m >= first]
    assert [m for m in minutes if m <= last_expected] == expected_minutes
    # Each beat sent ticks (the broker kept one copy): the logs show all four at work.
    for process in (worker, killed, frozen, steady):
        assert "Sending due task every-second" in process.output()


def test_bad_schedule_stops_beat_with_one_line(tmp_path: os.PathLike[str]) -> None:
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{HERE.parent.parent}",
               RELIABILITY_BROKER_URL=f"sqlite:///{tmp_path}/broker.db")
    with open(os.path.join(tmp_path, "bad_beat_app.py"), "w") as f:
        f.write("from tests.reliability.beat_app import app\n"
                "from celeriac.schedules import crontab\n"
                "app.conf.beat_schedule = {'nightly': {'task': 'beat_app.tick', 'schedule': crontab(hour='25')}}\n")
    done = subprocess.run([sys.executable, "-m", "celeriac", "-A", "bad_beat_app", "beat"], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "Error: beat entry 'nightly': schedule: crontab hour='25' is invalid: 25 is out of range 0-23")
    assert "Traceback" not in done.stderr
