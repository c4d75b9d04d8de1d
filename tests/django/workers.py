"""Worker subprocesses for tests: started, known ready by their log line, stopped warm."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from celeriac import Celery
from celeriac.worker import Worker

from .conftest import EXAMPLE, ROOT, Servers, subprocess_env

READY = " ready: queues "


class WorkerProcess:
    def __init__(self, command: list[str], env: dict[str, str], cwd: Path) -> None:
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.process = subprocess.Popen(command, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._pump, daemon=True).start()
        if not self.ready.wait(60):
            self.process.kill()
            raise AssertionError(f"the worker never became ready:\n{self.output()}")

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:  # drained always: a full pipe would block the worker
            self.lines.append(line)
            if READY in line:
                self.ready.set()

    def output(self) -> str:
        return "".join(self.lines)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def celeriac_worker(broker_url: str, *args: str, queues: Sequence[str] = ("celery", "emails"),
                    **env: str) -> WorkerProcess:
    """``python -m celeriac -A celeriac.contrib.django.project worker``, as a deployment runs it."""
    command = [sys.executable, "-m", "celeriac", "-A", "celeriac.contrib.django.project", "worker",
               "-Q", ",".join(queues), "--loglevel=INFO", *args]
    return WorkerProcess(command, _env(broker_url, env), ROOT)


def manage_py_worker(broker_url: str, *args: str, **env: str) -> WorkerProcess:
    """``python manage.py celeriac worker``, as the example's README runs it."""
    command = [sys.executable, str(EXAMPLE / "manage.py"), "celeriac", "worker", "--loglevel=INFO", *args]
    return WorkerProcess(command, _env(broker_url, env), EXAMPLE)


def _env(broker_url: str, extra: dict[str, str]) -> dict[str, str]:
    result_backend = extra.pop("CELERY_RESULT_BACKEND", broker_url)
    return subprocess_env(CELERY_BROKER_URL=broker_url, CELERY_RESULT_BACKEND=result_backend, **extra)


@contextlib.contextmanager
def worker_for(servers: Servers, app: Celery, *args: str,
               queues: Sequence[str] = ("celery", "emails")) -> Iterator[object]:
    """A worker on ``servers`` while the block runs: a process, or for memory:// a thread of
    this one (that broker lives in one process); either stops warm and must exit cleanly."""
    if servers.kind != "memory":
        process = celeriac_worker(servers.broker_url, *args, queues=queues,
                                  CELERY_RESULT_BACKEND=servers.result_backend)
        try:
            yield process
        finally:
            assert process.stop() == 0, process.output()
        return
    worker = Worker(app, queues=list(queues), handle_signals=False)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(worker.run(),), daemon=True)
    thread.start()
    try:
        assert worker.ready.wait(30), "the in-process worker never became ready"
        yield worker
    finally:
        loop.call_soon_threadsafe(worker.stop)
        thread.join(30)
        loop.close()
        assert not thread.is_alive() and worker.exit_code == 0
