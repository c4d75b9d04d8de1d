"""``celeriac worker -P prefork``: real workers on SQLite and Redis.

Each test checks what happened (which child ran what, how a task ended, which processes
exist), never how long it took: the machine is shared, and a time bound here only stops
a test that hangs.
"""

from __future__ import annotations

import datetime as dt
import decimal
import os
import signal
import uuid

import pytest

from celeriac.exceptions import TaskRevokedError, TimeLimitExceeded, WorkerLostError

from .conftest import Scenario, alive, descendants, wait_until

pytestmark = pytest.mark.reliability

GET_S = 60.0


def children_of(worker_pid: int) -> set[int]:
    """The pool's processes: the fork server and its children (all below the worker)."""
    return descendants(worker_pid)


def test_cpu_work_runs_in_several_children_and_async_tasks_on_the_worker(scenario: Scenario) -> None:
    worker = scenario.start_worker("-P", "prefork", "-c", "2", "--max-tasks-per-child", "5")
    results = [scenario.call("burn", 0.05) for _ in range(20)]
    pids = [r.get(timeout=GET_S) for r in results]
    # Each child runs at most 5 tasks: 20 tasks need at least 4 different children, none the worker.
    assert len(set(pids)) >= 4, pids
    assert worker.pid not in pids
    assert set(pids) <= {p for p in pids if p != worker.pid}
    assert scenario.call("on_the_loop").get(timeout=GET_S) == worker.pid  # async def stays on the loop
    assert "pool prefork" in worker.output() and "concurrency 2" in worker.output()


def test_time_limit_ends_the_child_and_a_fresh_one_serves_the_next_task(scenario: Scenario) -> None:
    worker = scenario.start_worker("-P", "prefork", "-c", "1")
    before = scenario.call("where").get(timeout=GET_S)
    with pytest.raises(TimeLimitExceeded):
        scenario.call("runaway").get(timeout=GET_S)
    after = scenario.call("where").get(timeout=GET_S)
    assert after != before  # the child that overran was ended and replaced
    assert not alive(before)
    assert worker.proc.poll() is None


def test_soft_time_limit_is_raised_inside_the_body(scenario: Scenario) -> None:
    scenario.start_worker("-P", "prefork", "-c", "2")
    assert scenario.call("catches_soft_limit").get(timeout=GET_S) == "cleaned up"
    uncaught = scenario.call("ignores_soft_limit")
    with pytest.raises(Exception) as raised:
        uncaught.get(timeout=GET_S)
    assert type(raised.value).__name__ == "SoftTimeLimitExceeded"


def test_a_segfault_fails_only_its_task(scenario: Scenario) -> None:
    worker = scenario.start_worker("-P", "prefork", "-c", "2")
    long_one = scenario.call("hold", 1.0)
    crashing = scenario.call("segfault")
    with pytest.raises(WorkerLostError, match="SIGSEGV"):
        crashing.get(timeout=GET_S)
    assert long_one.get(timeout=GET_S) != worker.pid  # the other child went on
    assert [scenario.call("where").get(timeout=GET_S) for _ in range(4)]  # and the worker keeps serving
    assert worker.proc.poll() is None
    assert "signal 11 (SIGSEGV)" in worker.output()


def test_os_exit_in_a_task_fails_it_with_worker_lost(scenario: Scenario) -> None:
    worker = scenario.start_worker("-P", "prefork", "-c", "1")
    with pytest.raises(WorkerLostError, match="exit code 3"):
        scenario.call("exits", 3).get(timeout=GET_S)
    assert scenario.call("where").get(timeout=GET_S) != worker.pid


def test_a_child_killed_mid_task_fails_that_task_and_is_replaced(scenario: Scenario) -> None:
    worker = scenario.start_worker("-P", "prefork", "-c", "2")
    victim = scenario.call("hold", 30)
    bystander = scenario.call("hold", 1)
    pid = scenario.pid_running(victim.id)
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(WorkerLostError, match="SIGKILL"):
        victim.get(timeout=GET_S)
    assert bystander.get(timeout=GET_S) != pid
    # Two children again, neither the dead one.
    wait_until(lambda: len(children_of(worker.pid) - {pid}) >= 3, "a replacement child")  # fork server + 2
    served = {scenario.call("where").get(timeout=GET_S) for _ in range(6)}
    assert pid not in served and worker.pid not in served


def test_an_idle_child_killed_is_replaced(sqlite_scenario: Scenario) -> None:
    scenario = sqlite_scenario
    worker = scenario.start_worker("-P", "prefork", "-c", "1")
    first = scenario.call("where").get(timeout=GET_S)
    os.kill(first, signal.SIGKILL)
    worker.wait_for_line("exited while idle")
    second = scenario.call("where").get(timeout=GET_S)
    assert second not in (first, worker.pid)


def test_reject_on_worker_lost_runs_the_task_again(sqlite_scenario: Scenario) -> None:
    scenario = sqlite_scenario
    scenario.start_worker("-P", "prefork", "-c", "1", env={"PREFORK_REJECT_ON_LOST": "1"})
    result = scenario.call("dies_once")
    assert isinstance(result.get(timeout=GET_S), int)
    assert [n[0] for n in scenario.notes() if n[1] == result.id] == ["start", "start"]


def test_revoke_terminate_ends_the_child_running_the_task(scenario: Scenario) -> None:
    worker = scenario.start_worker("-P", "prefork", "-c", "2")
    doomed = scenario.call("hold", 60)
    pid = scenario.pid_running(doomed.id)
    scenario.client.control.revoke(doomed.id, terminate=True)
    with pytest.raises(TaskRevokedError):
        doomed.get(timeout=GET_S)
    wait_until(lambda: not alive(pid), "the revoked task's child to end")
    assert scenario.call("where").get(timeout=GET_S) not in (pid, worker.pid)


@pytest.mark.parametrize("named", ["SIGKILL", "usr1"])
def test_revoke_terminate_with_a_signal_sends_that_signal(scenario: Scenario, named: str) -> None:
    worker = scenario.start_worker("-P", "prefork", "-c", "1")
    doomed = scenario.call("hold", 60)
    pid = scenario.pid_running(doomed.id)
    doomed.revoke(terminate=True, signal=named)  # AsyncResult.revoke carries it, as Celery's does
    with pytest.raises(TaskRevokedError):
        doomed.get(timeout=GET_S)
    wait_until(lambda: not alive(pid), "the revoked task's child to end")
    sent = "SIGKILL" if named == "SIGKILL" else "SIGUSR1"
    worker.wait_for_line(f"running {doomed.id}: sending {sent}")


def test_max_tasks_per_child_recycles_between_tasks(scenario: Scenario) -> None:
    scenario.start_worker("-P", "prefork", "-c", "2", "--max-tasks-per-child", "3")
    results = [scenario.call("where") for _ in range(30)]
    pids = [r.get(timeout=GET_S) for r in results]
    per_child = {pid: pids.count(pid) for pid in set(pids)}
    assert max(per_child.values()) <= 3, per_child
    assert len(per_child) >= 10


@pytest.mark.parametrize("limit", ["--max-tasks-per-child", "--max-memory-per-child"])
def test_recycling_every_task_over_a_thousand_tasks_loses_nothing(scenario: Scenario, limit: str) -> None:
    # A limit of 1 (task, or KiB) recycles the child after every task: a fork per task.
    worker = scenario.start_worker("-P", "prefork", "-c", "2", limit, "1", "--loglevel=WARNING")
    results = [scenario.call("where") for _ in range(1000)]
    pids = [r.get(timeout=GET_S) for r in results]
    assert len(pids) == 1000 and worker.pid not in pids
    assert worker.proc.poll() is None


def test_max_memory_per_child_recycles_after_the_task(scenario: Scenario) -> None:
    worker = scenario.start_worker("-P", "prefork", "-c", "1", "--max-memory-per-child", "1")
    # Any child holds more than 1 KiB: each is replaced after its task, never during it.
    pids = [scenario.call("grow", 64).get(timeout=GET_S) for _ in range(3)]
    assert len(set(pids)) == 3
    assert worker.output().count("--max-memory-per-child") >= 3


def test_arguments_and_results_cross_in_wire_form(scenario: Scenario) -> None:
    scenario.start_worker("-P", "prefork", "-c", "1")
    when = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    echoed = scenario.call("echo", when, uuid.UUID(int=5), decimal.Decimal("2.50"), b"\x01", {"k": [1, 2]},
                           kwargs={"flag": True}).get(timeout=GET_S)
    assert echoed["kinds"] == ["datetime", "UUID", "Decimal", "bytes", "dict"]
    assert echoed["args"][0] == when and echoed["kwargs"] == {"flag": True}
    special = scenario.call("returns_special").get(timeout=GET_S)
    assert special["when"] == dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC)
    assert special["amount"] == decimal.Decimal("1.10") and special["raw"] == b"\x00\xff"


def test_exceptions_cross_back_even_when_they_do_not_pickle(scenario: Scenario) -> None:
    scenario.start_worker("-P", "prefork", "-c", "1")
    with pytest.raises(ValueError, match="plain"):
        scenario.call("raises_value_error").get(timeout=GET_S)
    result = scenario.call("raises_unpicklable")
    with pytest.raises(Exception, match="42: the answer") as raised:
        result.get(timeout=GET_S)
    assert "TwoArgumentError" in (type(raised.value).__name__ + str(raised.value) + (result.traceback or ""))
    retries, _pid = scenario.call("retries_once").get(timeout=GET_S)
    assert retries == 1  # retry() in a child crossed back as a retry


def test_sigterm_waits_for_running_bodies_and_leaves_no_process(scenario: Scenario) -> None:
    worker = scenario.start_worker("-P", "prefork", "-c", "2")
    running = scenario.call("hold", 2)
    scenario.pid_running(running.id)
    pool = children_of(worker.pid)
    assert len(pool) == 3  # the fork server and two children
    os.killpg(worker.pid, signal.SIGTERM)  # the whole group, as a terminal or `kill -- -PGID` would
    assert worker.proc.wait(GET_S) == 0
    assert isinstance(running.get(timeout=GET_S), int)  # it finished during the warm shutdown
    wait_until(lambda: not any(alive(pid) for pid in pool), "the pool's processes to end")


def test_sigkill_of_the_worker_leaves_no_process(scenario: Scenario) -> None:
    worker = scenario.start_worker("-P", "prefork", "-c", "2")
    running = scenario.call("hold", 30)
    scenario.pid_running(running.id)
    pool = children_of(worker.pid)
    assert len(pool) == 3
    os.kill(worker.pid, signal.SIGKILL)
    worker.proc.wait(GET_S)
    wait_until(lambda: not any(alive(pid) for pid in pool), "the pool's processes to die with the worker")


def test_autoscale_starts_children_on_demand(sqlite_scenario: Scenario) -> None:
    scenario = sqlite_scenario
    worker = scenario.start_worker("-P", "prefork", "--autoscale", "3,0")
    assert "concurrency 3" in worker.output()
    assert len(children_of(worker.pid)) == 1  # the fork server only: MIN is 0
    gate = scenario.tmp_path / "open"
    held = [scenario.call("gate", str(gate)) for _ in range(3)]
    wait_until(lambda: sum(n[0] == "start" for n in scenario.notes()) == 3, "three tasks running at once")
    gate.touch()
    assert len({r.get(timeout=GET_S) for r in held}) == 3  # three children, forked as tasks waited


def test_handlers_run_once_in_the_child_or_in_the_worker_when_the_child_died(sqlite_scenario: Scenario) -> None:
    scenario = sqlite_scenario
    worker = scenario.start_worker("-P", "prefork", "-c", "1")
    ok = scenario.call("handled", False)
    child = ok.get(timeout=GET_S)
    failed = scenario.call("handled", True)
    with pytest.raises(ValueError):
        failed.get(timeout=GET_S)
    died = scenario.call("handled_dies")
    with pytest.raises(WorkerLostError):
        died.get(timeout=GET_S)
    wait_until(lambda: sum(n[1] == died.id for n in scenario.notes()) == 2, "the lost task's handlers")

    def calls(task_id: str) -> list[tuple[str, int]]:
        return sorted((event, pid) for event, found, pid in scenario.notes() if found == task_id)

    assert calls(ok.id) == [("after_return", child), ("on_success", child)]
    failing_child = calls(failed.id)[0][1]
    assert calls(failed.id) == [("after_return", failing_child), ("on_failure", failing_child)]
    assert failing_child != worker.pid
    # The child that died ran nothing more: the worker ran the failure handlers, once.
    assert calls(died.id) == [("after_return", worker.pid), ("on_failure", worker.pid)]


def test_worker_process_init_runs_in_each_child(sqlite_scenario: Scenario) -> None:
    scenario = sqlite_scenario
    scenario.start_worker("-P", "prefork", "-c", "2", "--max-tasks-per-child", "1")
    assert all(scenario.call("initialised_here").get(timeout=GET_S) for _ in range(3))


def test_a_child_that_stops_answering_cannot_hang_the_worker(scenario: Scenario) -> None:
    worker = scenario.start_worker("-P", "prefork", "-c", "2", "--shutdown-timeout", "1")
    with pytest.raises(TimeLimitExceeded):  # its time limit ends it
        scenario.call("freezes_with_limit").get(timeout=GET_S)
    frozen = scenario.call("freezes")  # no limit: it holds its slot until shutdown
    wait_until(lambda: any(_stopped(pid) for pid in descendants(worker.pid)), "the child to stop itself")
    assert scenario.call("where").get(timeout=GET_S) != worker.pid  # the other child still serves
    pool = descendants(worker.pid)
    os.kill(worker.pid, signal.SIGTERM)
    assert worker.proc.wait(GET_S) == 0  # the shutdown timeout ends the frozen child
    wait_until(lambda: not any(alive(pid) for pid in pool), "every child to end")
    assert frozen.state != "SUCCESS"


def _stopped(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "T"
    except OSError:
        return False


def test_acks_on_failure_or_timeout_false_dead_letters_a_task_whose_child_died(sqlite_scenario: Scenario) -> None:
    scenario = sqlite_scenario
    worker = scenario.start_worker("-P", "prefork", "-c", "1")
    result = scenario.call("dies_dead_lettered")
    with pytest.raises(Exception, match="exit code 7"):
        result.get(timeout=GET_S)
    worker.wait_for_line("sent to the dead-letter queue")
    assert scenario.call("where").get(timeout=GET_S) != worker.pid
