"""``celeriac worker --processes K``: a supervisor and K worker processes, for real."""

from __future__ import annotations

import os
import re
import signal

import pytest

from .conftest import Scenario, alive, descendants, wait_until

pytestmark = pytest.mark.reliability

GET_S = 60.0


def worker_pids(supervisor_pid: int) -> set[int]:
    """The supervisor's own children (the worker processes)."""
    return {pid for pid in descendants(supervisor_pid) if _parent(pid) == supervisor_pid}


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except OSError:
        return -1


def test_two_processes_serve_tasks_with_named_log_lines(scenario: Scenario) -> None:
    supervisor = scenario.start_worker("--processes", "2", "-c", "1", ready_lines=2)
    workers = worker_pids(supervisor.pid)
    assert len(workers) == 2
    gate = scenario.tmp_path / "open"
    held = [scenario.call("gate", str(gate)) for _ in range(2)]
    wait_until(lambda: sum(n[0] == "start" for n in scenario.notes()) == 2, "both processes to take one")
    gate.touch()
    assert {r.get(timeout=GET_S) for r in held} == workers  # -c 1 each: one task per process
    output = supervisor.output()
    assert re.search(r"celeriac1@\S+ ready", output) and re.search(r"celeriac2@\S+ ready", output)
    assert "INFO/Worker-1]" in output and "INFO/Worker-2]" in output and "INFO/Supervisor]" in output


def test_a_killed_process_is_started_again_and_sigterm_stops_all(scenario: Scenario) -> None:
    supervisor = scenario.start_worker("--processes", "2", "-P", "prefork", "-c", "1", ready_lines=2)
    first = worker_pids(supervisor.pid)
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    supervisor.wait_for_line("starting it again")
    supervisor.wait_for_line(" ready: ", count=3)
    wait_until(lambda: len(worker_pids(supervisor.pid)) == 2 and victim not in worker_pids(supervisor.pid),
               "a replacement worker process")
    assert scenario.call("where").get(timeout=GET_S)  # served by a prefork child of either
    everything = descendants(supervisor.pid)
    os.kill(supervisor.pid, signal.SIGTERM)
    assert supervisor.proc.wait(GET_S) == 0, supervisor.output()
    wait_until(lambda: not any(alive(pid) for pid in everything), "every process to end")
    assert supervisor.output().count("stopped after") == 2


def test_sigkill_of_the_supervisor_leaves_no_process(scenario: Scenario) -> None:
    supervisor = scenario.start_worker("--processes", "2", "-P", "prefork", "-c", "1", ready_lines=2)
    running = scenario.call("hold", 2)
    scenario.pid_running(running.id)
    everything = descendants(supervisor.pid)
    assert len(everything) == 6  # 2 workers, each with a fork server and a child
    os.kill(supervisor.pid, signal.SIGKILL)
    supervisor.proc.wait(GET_S)
    # The workers get SIGTERM from the kernel and shut down warmly: the running task finishes.
    assert isinstance(running.get(timeout=GET_S), int)
    wait_until(lambda: not any(alive(pid) for pid in everything), "the orphaned workers to shut down")


def test_a_process_that_keeps_dying_at_start_stops_the_supervisor(sqlite_scenario: Scenario) -> None:
    scenario = sqlite_scenario
    supervisor = scenario.start_worker("--processes", "2", env={"PREFORK_EXIT_ON_READY": "3"}, ready_lines=2)
    assert supervisor.proc.wait(GET_S * 2) == 3, supervisor.output()
    assert "times in a row" in supervisor.output()
    assert "starting it again in" in supervisor.output()


def test_processes_until_empty_exits_when_the_queue_is_drained(sqlite_scenario: Scenario) -> None:
    scenario = sqlite_scenario
    results = [scenario.call("where") for _ in range(10)]
    supervisor = scenario.start_worker("--processes", "2", "--until-empty", ready_lines=1)
    assert supervisor.proc.wait(GET_S) == 0, supervisor.output()
    assert len({r.get(timeout=GET_S) for r in results}) >= 1
