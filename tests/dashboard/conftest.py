"""A real worker and a real ``celeriac dashboard`` process per broker, and Debian's chromium.

The browser is /usr/bin/chromium driven by Playwright for Python (never a browser that
Playwright downloads); ``make test`` installs it with apt when missing. Without it these
tests skip locally and fail under CI=true.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from celeriac.dashboard.auth import hash_password

from ..conftest import IN_CI, postgres_test_url, redis_test_url

ROOT = Path(__file__).parent.parent.parent
CHROMIUM = os.environ.get("CELERIAC_TEST_CHROMIUM", "/usr/bin/chromium")
USER, PASSWORD = "admin", "correct horse battery staple"
PROJ = "tests.dashboard.proj"


def chromium_or_skip() -> str:
    found = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        found = None
    if found:
        return found
    message = (f"no chromium at {CHROMIUM} (or Playwright for Python is missing): install it with "
               "`apt-get install chromium` (make test does) and `pip install -e '.[dev]'`")
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Process:
    name: str
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def pump(self, ready: str, event: threading.Event) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:  # drained always: a full pipe would block the process
            self.lines.append(line)
            if ready in line:
                event.set()

    def output(self) -> str:
        return "".join(self.lines[-200:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start(name: str, args: list[str], env: dict[str, str], ready: str, timeout: float = 60) -> Process:
    proc = subprocess.Popen([sys.executable, "-m", "celeriac", "-A", PROJ, *args], env=env, cwd=ROOT,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    process = Process(name, proc)
    event = threading.Event()
    threading.Thread(target=process.pump, args=(ready, event), daemon=True).start()
    if not event.wait(timeout):
        process.stop()
        raise AssertionError(f"{name} never became ready:\n{process.output()}")
    return process


@dataclass
class Stack:
    """A broker, a worker and a dashboard on it, and a client app in this process to send tasks."""

    kind: str
    broker_url: str
    url: str
    marks: Path
    worker: Process
    dashboard: Process
    app: Any

    def send(self, name: str, *args: Any) -> str:
        return str(self.app.send_task(f"{PROJ}.{name}", args).id)

    def wait_state(self, task_id: str, states: set[str], timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        state = "PENDING"
        while time.monotonic() < deadline:
            state = self.app.AsyncResult(task_id).state
            if state in states:
                return state
            time.sleep(0.1)
        raise AssertionError(f"{task_id} stayed {state}, wanted {states}\n{self.worker.output()}")

    def logs(self) -> str:
        return f"--- worker\n{self.worker.output()}\n--- dashboard\n{self.dashboard.output()}"


def wait_http(url: str, process: Process, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.proc.poll() is not None:
            raise AssertionError(f"the dashboard exited:\n{process.output()}")
        with contextlib.suppress(urllib.error.URLError, ConnectionError, OSError), \
                urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.2)
    raise AssertionError(f"the dashboard never answered at {url}:\n{process.output()}")


@pytest.fixture(scope="module", params=["sqlite", "redis", "postgres"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    chromium_or_skip()
    tmp = tmp_path_factory.mktemp(f"dash-{request.param}")
    with contextlib.ExitStack() as exits:
        if request.param == "sqlite":
            broker_url = f"sqlite:///{tmp}/broker.db"
        elif request.param == "redis":
            broker_url = exits.enter_context(redis_test_url("dash"))
        else:
            broker_url = exits.enter_context(postgres_test_url("dash"))
        marks = tmp / "marks"
        marks.mkdir()
        env = {**os.environ, "DASHBOARD_TEST_BROKER_URL": broker_url, "DASHBOARD_TEST_MARKS": str(marks),
               "PYTHONPATH": str(ROOT), "CELERIAC_DASHBOARD_USER": USER,
               "CELERIAC_DASHBOARD_PASSWORD_HASH": hash_password(PASSWORD)}
        env.pop("CELERIAC_APP", None)
        env.pop("DJANGO_SETTINGS_MODULE", None)
        worker = start("worker", ["worker", "--loglevel=INFO", "-c", "8", "--lease-seconds", "3"], env,
                       " ready: ")
        exits.callback(worker.stop)
        port = free_port()
        dashboard = start("dashboard", ["dashboard", "--port", str(port)], env, "celeriac dashboard:")
        exits.callback(dashboard.stop)
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/login", dashboard)

        from celeriac import Celery

        client = Celery("dash-client", broker=broker_url)
        yield Stack(request.param, broker_url, url, marks, worker, dashboard, client)


@pytest.fixture(scope="module")
def browser(stack: Stack) -> Iterator[Any]:
    # Playwright's sync API keeps an event loop marked running on this thread while it is
    # open, so no test outside this module may see it open: one per stack (it closes before
    # the stack's parameter changes), and a check that closing it left no loop behind.
    path = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield browser
        browser.close()
    assert asyncio._get_running_loop() is None, "Playwright left an event loop running on the test thread"


@pytest.fixture
def page(browser: Any, stack: Stack) -> Iterator[Any]:
    """A logged-in page on the stack's dashboard."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.goto(f"{stack.url}/login")
    page.fill("input[name=user]", USER)
    page.fill("input[name=password]", PASSWORD)
    page.click("form.login button")
    page.wait_for_url(f"{stack.url}/")
    yield page
    context.close()
