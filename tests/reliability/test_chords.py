"""A chord's body is enqueued exactly once: many processes, members at the same instant,
and a worker killed while members run."""

from __future__ import annotations

import signal

import pytest

from celeriac import chord

from .conftest import Run
from .test_delivery import tasks_module

pytestmark = pytest.mark.reliability


def test_chord_of_1000_on_two_workers_calls_the_body_once_in_order(run: Run) -> None:
    tasks = tasks_module(run)
    run.start_worker("-c", "100")
    run.start_worker("-c", "100")
    result = chord(tasks.member.s(i) for i in range(1000))(tasks.collect.s())
    assert result.get(timeout=120) == list(range(1000))
    body_runs = run.starts()[result.id]
    assert body_runs == 1


def test_chord_survives_a_worker_killed_mid_header(run: Run) -> None:
    tasks = tasks_module(run)
    doomed = run.start_worker("-c", "10")
    result = chord(tasks.member.s(i, 1.0) for i in range(20))(tasks.collect.s())
    run.wait_for(lambda: len(run.starts()) >= 10, what="ten members running")
    doomed.signal_group(signal.SIGKILL)
    doomed.wait(10)
    run.start_worker("-c", "20")
    assert result.get(timeout=60) == list(range(20))
    assert run.starts()[result.id] == 1
