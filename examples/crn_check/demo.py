"""The crn_check demo: the Django app, a worker and the Hometax stand-in, all on SQLite.

    .venv/bin/python examples/crn_check/demo.py            # or: make demo-django

Starts the stand-in (a thread here), ``manage.py celeriac worker`` and ``manage.py
runserver`` (subprocesses), sends 1,000 numbers (active, suspended, closed and
unregistered ones from the stand-in's truth table, and some invalid ones) to
``POST /api/crn/check/``, follows ``GET /api/crn/check/<group_id>/`` with a progress bar,
and prints the time taken, the counts per status checked against the truth table, and
how to open the admin and the API docs. Django's database is ``db.sqlite3`` beside this
file, kept so the admin shows the rows afterwards; the broker is a fresh file per run.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from celeriac.demo.crn import check_digit
from celeriac.demo.standin import STATUSES, StandIn, count_statuses, expected_status, generate_numbers

HERE = Path(__file__).resolve().parent
READY_LINE = re.compile(r" ready: queues ")
NOTEWORTHY_LINE = re.compile(r"(WARNING|ERROR|CRITICAL)/|Traceback")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
POLL_INTERVAL_S = 0.1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="numbers sent, invalid ones included (1000)")
    parser.add_argument("--invalid", type=int, default=50, help="how many of them are invalid (50)")
    parser.add_argument("--delay-ms", type=float, default=100.0, help="the stand-in's answer delay (100)")
    parser.add_argument("--failure-rate", type=float, default=0.0,
                        help="share of the stand-in's answers that are HTTP 503, retried by the task with "
                             "back-off (0; try 0.05 to watch retries)")
    parser.add_argument("--concurrency", "-c", type=int, default=1000, help="the worker's tasks in flight (1000)")
    parser.add_argument("--seed", type=int, default=0, help="picks the numbers and the failures (0)")
    parser.add_argument("--result-backend", default=None,
                        help="CELERY_RESULT_BACKEND for this run, e.g. django-db (default: the broker's file)")
    parser.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds (300)")
    parser.add_argument("--serve", action="store_true", help="keep the server and worker running afterwards")
    options = parser.parse_args(argv)
    if not 0 <= options.invalid < options.count:
        parser.error("--invalid must be at least 0 and less than --count")
    return Demo(options).run()


class Demo:
    def __init__(self, options: argparse.Namespace) -> None:
        self.options = options
        self.console = Console(highlight=False)
        self.workdir = Path(tempfile.mkdtemp(prefix="crn-check-demo-"))
        self.standin = StandIn(delay_s=options.delay_ms / 1000, failure_rate=options.failure_rate,
                               seed=options.seed)
        self.processes: list[Child] = []

    def env(self) -> dict[str, str]:
        broker_url = f"sqlite:///{self.workdir / 'celeriac-broker.db'}"
        paths = [str(HERE), os.environ.get("PYTHONPATH", "")]
        return {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in paths if p),
            "DJANGO_SETTINGS_MODULE": "crn_check.settings",
            "CELERY_BROKER_URL": broker_url,
            "CELERY_RESULT_BACKEND": self.options.result_backend or broker_url,
            "HOMETAX_URL": self.standin.url,
            "PYTHONUNBUFFERED": "1",
        }

    def run(self) -> int:
        console = self.console
        try:
            self.standin.start()
            console.print(f"Hometax stand-in at [bold]{self.standin.url}[/] (answers in "
                          f"{self.options.delay_ms:g} ms, {self.options.failure_rate:.0%} HTTP 503)")
            self.manage("migrate", "--verbosity", "0")
            port = free_port()
            worker = self.start("worker", [*self.manage_command(), "celeriac", "worker", "-c",
                                           str(self.options.concurrency), "--loglevel=INFO"], READY_LINE)
            server = self.start("server", [*self.manage_command(), "runserver", f"127.0.0.1:{port}",
                                           "--noreload", "--skip-checks"], None)
            base_url = f"http://127.0.0.1:{port}"
            wait_for_http(f"{base_url}/api/schema/", server)
            worker.wait_ready()
            console.print(f"worker ready (-c {self.options.concurrency}); Django at [bold]{base_url}[/]")
            ok = self.check(base_url)
            if self.options.serve and ok:
                self.serve(base_url)
            return 0 if ok else 1
        finally:
            for child in reversed(self.processes):
                child.stop(console)
            self.standin.stop()
            shutil.rmtree(self.workdir, ignore_errors=True)

    def manage_command(self) -> list[str]:
        return [sys.executable, str(HERE / "manage.py")]

    def manage(self, *args: str) -> None:
        subprocess.run([*self.manage_command(), *args], env=self.env(), cwd=HERE, check=True)

    def start(self, label: str, command: list[str], ready_line: re.Pattern[str] | None) -> Child:
        child = Child(label, command, self.env(), ready_line)
        self.processes.append(child)
        return child

    # --- the run --------------------------------------------------------------------

    def numbers(self) -> tuple[list[str], list[str]]:
        """``(valid, invalid)``, both repeatable from the seed."""
        options = self.options
        valid = generate_numbers(options.count - options.invalid, options.seed)
        rng = random.Random(options.seed)
        invalid = ["213", "2143"][: options.invalid]  # the article's invalid samples
        while len(invalid) < options.invalid:
            first_nine = f"{rng.randrange(101, 1000)}{rng.randrange(10**6):06d}"
            wrong_digit = (check_digit(first_nine) + rng.randrange(1, 10)) % 10
            letter_o = f"{first_nine[:3]}-8O-{first_nine[5:]}"  # a letter O for a zero
            invalid.append(rng.choice([f"{first_nine}{wrong_digit}", first_nine, letter_o]))
        return valid, invalid

    def check(self, base_url: str) -> bool:
        console = self.console
        valid, invalid = self.numbers()
        sent = valid + invalid
        random.Random(self.options.seed).shuffle(sent)
        with httpx.Client(base_url=base_url, timeout=60.0) as client:
            started = time.perf_counter()
            response = client.post("/api/crn/check/", json={"numbers": sent})
            view_s = time.perf_counter() - started
            if response.status_code != 202:
                console.print(f"[red]the API answered {response.status_code}:[/] {response.text[:500]}")
                return False
            accepted = response.json()
            console.print(
                f"POST /api/crn/check/ with {len(sent)} numbers answered 202 in {view_s * 1000:.0f} ms: "
                f"{accepted['total']} queued as group {accepted['group_id']}, {len(accepted['invalid'])} "
                "invalid (not sent)"
            )
            progress_url = accepted["progress_url"]
            final = self.follow(client, progress_url, accepted["total"], started)
            elapsed_s = time.perf_counter() - started
        if final is None:
            console.print(f"[red]the checks did not finish within {self.options.timeout:g}s[/]")
            return False
        return self.report(valid, invalid, accepted, final, elapsed_s, view_s)

    def follow(self, client: httpx.Client, progress_url: str, total: int, started: float) -> dict[str, Any] | None:
        columns = (TextColumn("checking"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=self.console) as progress:
            bar = progress.add_task("checking", total=total)
            while time.perf_counter() - started < self.options.timeout:
                state = client.get(progress_url, params={"results": "false"}).json()
                progress.update(bar, completed=state["done"])
                if state["is_complete"]:
                    break
                time.sleep(POLL_INTERVAL_S)  # polling is what a browser would do, too
            else:
                return None
        final: dict[str, Any] = client.get(progress_url).json()
        return final

    def report(self, valid: list[str], invalid: list[str], accepted: dict[str, Any], final: dict[str, Any],
               elapsed_s: float, view_s: float) -> bool:
        console = self.console
        expected = count_statuses(valid)
        counts = final["counts"]
        wrong = [r for r in final["results"] if r["status"] != expected_status(r["number"] or "")]
        console.print(
            f"[bold]{final['done']} of {final['total']} checks done in {elapsed_s:.2f}s[/] (from the POST to "
            f"the last result; {final['done'] / elapsed_s:.0f} checks/s; the view answered in {view_s * 1000:.0f} "
            f"ms); the stand-in answered {self.standin.app.requests_served} requests, "
            f"{self.standin.app.failures_injected} of them with HTTP 503 (retried)"
        )
        table = Table(title="Statuses")
        for name in ("status", "stand-in truth table", "checked", "match"):
            table.add_column(name, justify="left" if name == "status" else "right")
        for status in STATUSES:
            matches = expected[status] == counts.get(status, 0)
            table.add_row(status, str(expected[status]), str(counts.get(status, 0)),
                          "[green]yes[/]" if matches else "[red]no[/]")
        failed = counts.get("failed", 0)
        table.add_row("failed", "0", str(failed), "[red]no[/]" if failed else "[green]yes[/]")
        refused = len(accepted["invalid"])
        table.add_row("invalid (not sent)", str(len(invalid)), str(refused),
                      "[green]yes[/]" if refused == len(invalid) else "[red]no[/]")
        console.print(table)
        ok = not wrong and refused == len(invalid) and final["is_complete"] and not counts.get("failed")
        if ok:
            console.print("[green]Every number's status matches the stand-in's truth table.[/]")
        for result in wrong[:10]:
            console.print(f"[red]mismatch[/] {result}")
        python = os.path.relpath(sys.executable)
        manage = os.path.relpath(HERE / "manage.py")
        console.print(
            "\nThe rows are in Django's database now. To look at them:\n"
            f"  {python} {manage} createsuperuser     # once\n"
            f"  {python} {manage} runserver\n"
            "  admin:    http://127.0.0.1:8000/admin/checks/checkedcrn/\n"
            "  API docs: http://127.0.0.1:8000/api/docs/   (schema: /api/schema/)\n"
            f"or run this demo with --serve to keep its server and worker running."
        )
        return ok

    def serve(self, base_url: str) -> None:
        self.console.print(f"\nServing at {base_url}: admin {base_url}/admin/, API docs {base_url}/api/docs/. "
                           "Ctrl-C stops.")
        try:
            while all(child.process.poll() is None for child in self.processes):
                time.sleep(1)
        except KeyboardInterrupt:
            pass


class Child:
    """A subprocess whose stderr is drained by a thread; ready once it logs ``ready_line``."""

    def __init__(self, label: str, command: list[str], env: dict[str, str], ready_line: re.Pattern[str] | None) -> None:
        self.label = label
        self.ready_line = ready_line
        self.ready = threading.Event()
        self.noteworthy: list[str] = []
        self.last_lines: collections.deque[str] = collections.deque(maxlen=30)
        self.process = subprocess.Popen(command, env=env, cwd=HERE, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert self.process.stderr is not None
        self.reader = threading.Thread(target=self._read, args=(self.process.stderr,), daemon=True)
        self.reader.start()

    def _read(self, stream: IO[str]) -> None:
        # Always drain the pipe: a full pipe would block the child's logging.
        for line in stream:
            line = line.rstrip("\n")
            self.last_lines.append(line)
            if self.ready_line is not None and self.ready_line.search(line):
                self.ready.set()
            elif NOTEWORTHY_LINE.search(line) and len(self.noteworthy) < 100:
                self.noteworthy.append(line)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.ready.wait(0.1):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the {self.label} did not start:\n" + "\n".join(self.last_lines))

    def stop(self, console: Console) -> None:
        """SIGTERM (a warm shutdown for the worker), then wait; SIGKILL only if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.reader.join(timeout=5)
        if self.noteworthy:
            console.print(f"the {self.label} logged {len(self.noteworthy)} warnings or errors; the first ones:")
            for line in self.noteworthy[:5]:
                console.print(f"  {line}", markup=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, child: Child) -> None:
    """Poll until the server answers; runserver logs no line that says it is ready."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            httpx.get(url, timeout=2.0)
            return
        except httpx.TransportError:
            if child.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the {child.label} did not start:\n" + "\n".join(child.last_lines)) from None
            time.sleep(0.1)


if __name__ == "__main__":
    sys.exit(main())
