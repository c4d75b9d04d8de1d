"""Real worker processes, killed mid-run, and a count of executions per task id."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ..conftest import postgres_test_url, redis_test_url

HERE = Path(__file__).parent
LEASE_S = 2.0


@dataclass
class WorkerProcess:
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return "".join(self.lines)

    def signal_group(self, sig: int) -> None:
        os.killpg(self.proc.pid, sig)

    def wait(self, timeout: float = 60) -> int:
        return self.proc.wait(timeout)


@dataclass
class Run:
    """One scenario: a broker URL, the execution log, and the workers started for it."""

    broker_url: str
    log_path: Path
    workers: list[WorkerProcess] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(RELIABILITY_BROKER_URL=self.broker_url, RELIABILITY_LOG=str(self.log_path),
                   RELIABILITY_LEASE_S=str(LEASE_S), PYTHONPATH=str(HERE.parent.parent))
        return env

    def start_worker(self, *args: str) -> WorkerProcess:
        cmd = [sys.executable, "-m", "celeriac", "-A", "tests.reliability.tasks_under_test", "worker",
               "--loglevel=INFO", *args]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=self.env(), start_new_session=True, cwd=HERE.parent.parent)
        worker = WorkerProcess(proc)

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                worker.lines.append(line)
                if " ready: " in line:
                    worker.ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not worker.ready.wait(30):
            proc.kill()
            raise AssertionError(f"worker never became ready:\n{worker.output()}")
        self.workers.append(worker)
        return worker

    def events(self) -> list[tuple[str, str, int, int, float]]:
        if not self.log_path.exists():
            return []
        out = []
        for line in self.log_path.read_text().splitlines():
            event, task_id, pid, token, when = line.split()
            out.append((event, task_id, int(pid), int(token), float(when)))
        return out

    def starts(self) -> Counter[str]:
        return Counter(e[1] for e in self.events() if e[0] == "start")

    def ends(self) -> Counter[str]:
        return Counter(e[1] for e in self.events() if e[0] == "end")

    def wait_for(self, condition: object, timeout: float = 60, what: str = "condition") -> None:
        """Poll the execution log (the subject here is other processes) until ``condition()``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():  # type: ignore[operator]
                return
            time.sleep(0.05)
        logs = "\n".join(w.output() for w in self.workers)
        raise AssertionError(f"timed out waiting for {what}; events={self.events()}\n{logs}")


@pytest.fixture(params=["sqlite", "redis", "postgres"])
def run(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Run]:
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path}/broker.db"
        elif request.param == "postgres":
            url = stack.enter_context(postgres_test_url("rel"))
        else:
            url = stack.enter_context(redis_test_url("rel"))
        yield from _scenario(url, tmp_path)


def _scenario(url: str, tmp_path: Path) -> Iterator[Run]:
    scenario = Run(url, tmp_path / "executions.log")
    os.environ["RELIABILITY_BROKER_URL"] = url
    yield scenario
    for worker in scenario.workers:
        if worker.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                worker.signal_group(signal.SIGKILL)
            worker.proc.wait(10)
