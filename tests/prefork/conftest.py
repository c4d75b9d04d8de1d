"""Real ``celeriac worker -P prefork`` processes on SQLite and Redis, and a client app.

Nothing here is timed: tests wait for outcomes (a result, a line in the log, a process
gone) with generous bounds that only stop a hung test.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery
from celeriac.result import AsyncResult

from ..conftest import redis_test_url

ROOT = Path(__file__).resolve().parent.parent.parent
TASKS = "tests.prefork.tasks"
WAIT_S = 60.0  # bounds a wait for something that should happen; never a measurement


@dataclass
class WorkerProcess:
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)
    ready_count: int = 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return "".join(self.lines)

    def wait_for_line(self, text: str, count: int = 1, timeout: float = WAIT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(text in line for line in list(self.lines)) >= count:
                return
            if self.proc.poll() is not None and sum(text in line for line in list(self.lines)) < count:
                time.sleep(0.2)  # the pump may still be reading the last lines
                if sum(text in line for line in list(self.lines)) >= count:
                    return
                raise AssertionError(f"worker exited ({self.proc.returncode}) before {text!r}:\n{self.output()}")
            time.sleep(0.05)
        raise AssertionError(f"no {count}x {text!r} within {timeout}s:\n{self.output()}")


@dataclass
class Scenario:
    broker_url: str
    tmp_path: Path
    workers: list[WorkerProcess] = field(default_factory=list)
    _client: Celery | None = None

    @property
    def notes_path(self) -> Path:
        return self.tmp_path / "notes.log"

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(PREFORK_BROKER_URL=self.broker_url, PREFORK_NOTES=str(self.notes_path),
                   PYTHONPATH=str(ROOT), **extra)
        return env

    def start_worker(self, *args: str, ready_lines: int = 1, env: dict[str, str] | None = None) -> WorkerProcess:
        cmd = [sys.executable, "-m", "celeriac", "-A", TASKS, "worker", "--loglevel=INFO", *args]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=self.env(**(env or {})), start_new_session=True, cwd=ROOT)
        worker = WorkerProcess(proc)

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                worker.lines.append(line)

        threading.Thread(target=pump, daemon=True).start()
        self.workers.append(worker)
        worker.wait_for_line(" ready: ", count=ready_lines, timeout=60)
        return worker

    @property
    def client(self) -> Celery:
        if self._client is None:
            self._client = Celery("prefork-client", broker=self.broker_url)
        return self._client

    def call(self, name: str, *args: Any, **options: Any) -> AsyncResult[Any]:
        """Send ``tests.prefork.tasks.<name>(*args)``; ``options`` as apply_async's (``kwargs=`` too)."""
        return self.client.send_task(f"{TASKS}.{name}", args=args, **options)

    def notes(self) -> list[tuple[str, str, int]]:
        if not self.notes_path.exists():
            return []
        out = []
        for line in self.notes_path.read_text().splitlines():
            event, task_id, pid = line.split()
            out.append((event, task_id, int(pid)))
        return out

    def pid_running(self, task_id: str) -> int:
        """The pid of the child that noted it started ``task_id``."""
        wait_until(lambda: any(n[0] == "start" and n[1] == task_id for n in self.notes()), f"{task_id} to start")
        return next(n[2] for n in self.notes() if n[0] == "start" and n[1] == task_id)


def wait_until(condition: Callable[[], Any], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (read from /proc: children of children included)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.fixture(params=["sqlite", "redis"])
def scenario(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Scenario]:
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path}/broker.db"
        else:
            url = stack.enter_context(redis_test_url("prefork"))
        found = Scenario(url, tmp_path)
        yield found
        _stop_all(found)


@pytest.fixture
def sqlite_scenario(tmp_path: Path) -> Iterator[Scenario]:
    found = Scenario(f"sqlite:///{tmp_path}/broker.db", tmp_path)
    yield found
    _stop_all(found)


def _stop_all(found: Scenario) -> None:
    for worker in found.workers:
        below = descendants(worker.pid)
        if worker.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGKILL)
            worker.proc.wait(10)
        for pid in below:  # none should be left (they die with their parent); make sure
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
