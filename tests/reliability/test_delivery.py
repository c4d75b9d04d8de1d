"""DESIGN section 3 against real processes: nothing lost, duplicates only where allowed.

A task runs twice only if its worker died, froze or was cut off while running it, or was
still running it when a warm shutdown's timeout ran out; never because of a countdown,
a long run time, or a warm shutdown that finished in time.
"""

from __future__ import annotations

import importlib
import signal
import time
from typing import Any

import pytest

from .conftest import LEASE_S, Run

pytestmark = pytest.mark.reliability


def tasks_module(run: Run) -> Any:
    """The task module, bound to this scenario's broker (it reads the URL at import)."""
    from tests.reliability import tasks_under_test

    importlib.reload(tasks_under_test)
    return tasks_under_test


def test_countdown_longer_than_the_lease_runs_once(run: Run) -> None:
    tasks = tasks_module(run)
    run.start_worker("-c", "4")
    run.start_worker("-c", "4")
    result = tasks.nap.apply_async((0.1,), countdown=LEASE_S * 2.5)
    assert result.get(timeout=60)["pid"] in {w.pid for w in run.workers}
    time.sleep(LEASE_S)  # give a wrongly reclaimed copy time to show up
    assert run.starts() == {result.id: 1}


def test_task_running_three_leases_on_a_live_worker_runs_once(run: Run) -> None:
    tasks = tasks_module(run)
    run.start_worker("-c", "4")
    run.start_worker("-c", "4")
    async_result = tasks.nap.delay(LEASE_S * 3)
    blocking_result = tasks.blocking_nap.delay(LEASE_S * 3)
    async_result.get(timeout=60)
    blocking_result.get(timeout=60)
    assert run.starts() == {async_result.id: 1, blocking_result.id: 1}


def test_sigterm_to_the_process_group_loses_nothing_and_repeats_nothing(run: Run) -> None:
    tasks = tasks_module(run)
    worker = run.start_worker("-c", "10")
    results = [tasks.nap.delay(1.5) for _ in range(5)] + [tasks.blocking_nap.delay(1.5) for _ in range(5)]
    run.wait_for(lambda: len(run.starts()) == 10, what="all ten tasks running")
    worker.signal_group(signal.SIGTERM)
    assert worker.wait(60) == 0
    assert run.ends() == {r.id: 1 for r in results}
    for r in results:
        assert r.get(timeout=10)["pid"] == worker.pid
    assert run.starts() == {r.id: 1 for r in results}


def test_warm_shutdown_timeout_releases_only_the_unfinished(run: Run) -> None:
    tasks = tasks_module(run)
    worker = run.start_worker("-c", "10", "--shutdown-timeout", "1")
    quick = [tasks.nap.delay(0.5) for _ in range(3)]
    slow = [tasks.nap.delay(30) for _ in range(3)]
    run.wait_for(lambda: len(run.starts()) == 6, what="six tasks running")
    worker.signal_group(signal.SIGTERM)
    assert worker.wait(60) == 0
    assert "released 3 tasks still running at shutdown" in worker.output()
    for r in slow:
        assert r.id in worker.output()
    tasks.nap.delay(0)  # nothing special: the queue keeps working
    second = run.start_worker("-c", "10")
    run.wait_for(lambda: all(run.starts()[r.id] == 2 for r in slow), what="released tasks to restart")
    assert all(run.starts()[r.id] == 1 for r in quick)
    assert all(r.get(timeout=10)["pid"] == worker.pid for r in quick)
    second.signal_group(signal.SIGKILL)


def test_sigkill_loses_nothing_and_orphans_return_within_two_leases(run: Run) -> None:
    tasks = tasks_module(run)
    doomed = run.start_worker("-c", "20")
    results = [tasks.nap.delay(2.0) for _ in range(6)] + [tasks.blocking_nap.delay(2.0) for _ in range(6)]
    run.wait_for(lambda: len(run.starts()) == 12, what="twelve tasks running")
    running_at_kill = set(run.starts())
    doomed.signal_group(signal.SIGKILL)
    killed_at = time.time()
    doomed.wait(10)
    survivor = run.start_worker("-c", "20")
    for r in results:
        assert r.get(timeout=60)["pid"] == survivor.pid
    restarts = [e for e in run.events() if e[0] == "start" and e[2] == survivor.pid]
    assert {e[1] for e in restarts} == running_at_kill
    assert max(e[4] for e in restarts) - killed_at <= 2 * LEASE_S + 1.0  # +1 s: process start-up
    ends = run.ends()
    assert all(ends[r.id] == 1 for r in results)
    assert all(run.starts()[r.id] == 2 for r in results)  # killed mid-run: exactly one more run


def test_frozen_worker_is_fenced_off_when_it_resumes(run: Run) -> None:
    tasks = tasks_module(run)
    frozen = run.start_worker("-c", "4")
    result = tasks.blocking_nap.delay(LEASE_S * 2)
    run.wait_for(lambda: len(run.starts()) == 1, what="the task to start")
    frozen.signal_group(signal.SIGSTOP)
    try:
        taker = run.start_worker("-c", "4")
        run.wait_for(lambda: run.starts()[result.id] == 2, timeout=3 * LEASE_S + 10,
                     what="another worker to take the expired lease")
    finally:
        frozen.signal_group(signal.SIGCONT)
    run.wait_for(lambda: run.ends()[result.id] == 2, what="both runs to end")
    run.wait_for(lambda: "refused" in frozen.output() or "taken over" in frozen.output(),
                 timeout=LEASE_S * 3, what="the resumed worker to log that it was fenced off")
    time.sleep(0.5)  # let the resumed worker's refused writes land, if any were let through
    assert tasks.app.AsyncResult(result.id).get(timeout=10)["pid"] == taker.pid
