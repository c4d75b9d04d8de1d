"""``celeriac demo``: a thousand registration checks, one worker process, SQLite, offline.

The Hometax stand-in runs on a thread of this process; one ``celeriac worker`` runs as a
subprocess on a fresh SQLite file; this process sends the checks, shows their progress
from the result store, and compares what came back with the stand-in's truth table.
"""

from __future__ import annotations

import asyncio
import collections
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

import click

from ..message import READY_STATES, SUCCESS
from ..serialization import from_wire
from ..worker.cli import run_loop

if TYPE_CHECKING:
    from rich.console import Console

    from ..app import Celery
    from ..message import ResultRecord
    from .standin import StandIn

READY_LINE = re.compile(r" ready: queues ")
NOTEWORTHY_LINE = re.compile(r"(WARNING|ERROR|CRITICAL)/|Traceback")
POLL_INTERVAL_S = 0.05
WORKER_START_TIMEOUT_S = 60.0
WORKER_STOP_TIMEOUT_S = 30.0


@click.command("demo", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--count", type=click.IntRange(1), default=1000, show_default=True,
              help="How many registration numbers to check.")
@click.option("--delay-ms", type=click.FloatRange(0), default=100.0, show_default=True,
              help="The stand-in's answer delay.")
@click.option("--failure-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Share of the stand-in's answers that are HTTP 503 (the task retries them).")
@click.option("--concurrency", "-c", type=click.IntRange(1), default=1000, show_default=True,
              help="The worker's tasks in flight.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Picks the numbers and which requests fail.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(1), default=300.0, show_default=True,
              help="Give up waiting for results after this many seconds.")
def demo_command(count: int, delay_ms: float, failure_rate: float, concurrency: int, seed: int,
                 timeout_s: float) -> None:
    """Check registration numbers against a bundled Hometax stand-in, on one worker."""
    options = DemoOptions(count, delay_ms / 1000, failure_rate, concurrency, seed, timeout_s)
    outcome = DemoOutcome()
    run_loop(run_demo(options, outcome))
    if not outcome.ok:
        sys.exit(1)


@dataclass
class DemoOptions:
    count: int
    delay_s: float
    failure_rate: float
    concurrency: int
    seed: int
    timeout_s: float


@dataclass
class DemoOutcome:
    ok: bool = False
    elapsed_s: float = 0.0


async def run_demo(options: DemoOptions, outcome: DemoOutcome) -> None:
    # Imported here, as every `celeriac` command imports this module: rich is slow to import,
    # and the stand-in needs the demo extra (defusedxml).
    from rich.console import Console

    from .standin import StandIn

    console = Console(highlight=False)
    workdir = tempfile.mkdtemp(prefix="celeriac-demo-")
    broker_url = f"sqlite:///{os.path.join(workdir, 'demo.db')}"
    standin = StandIn(delay_s=options.delay_s, failure_rate=options.failure_rate, seed=options.seed)
    worker: WorkerProcess | None = None
    try:
        standin.start()
        console.print(f"Hometax stand-in at [bold]{standin.url}[/] (answers in {options.delay_s * 1000:g} ms, "
                      f"{options.failure_rate:.0%} HTTP 503)")
        worker = WorkerProcess(broker_url, standin.url, options.concurrency)
        started = time.perf_counter()
        await worker.start()
        console.print(f"worker ready in {time.perf_counter() - started:.2f}s: one process, "
                      f"-c {options.concurrency}, broker {broker_url}")
        await check_numbers(options, outcome, broker_url, standin, console)
    finally:
        if worker is not None:
            code = await worker.stop()
            if code != 0:
                console.print(f"[red]the worker exited with code {code}[/]")
                outcome.ok = False
            worker.show_noteworthy(console)
        standin.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    # Where the time went: the worker is the only child waited for, so RUSAGE_CHILDREN is its.
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    console.print(f"CPU time: worker process {child.ru_utime + child.ru_stime:.2f}s, this process (stand-in, "
                  f"sending, progress) {time.process_time():.2f}s")


async def check_numbers(options: DemoOptions, outcome: DemoOutcome, broker_url: str, standin: StandIn,
                        console: Console) -> None:
    # Imported here, not at the top: importing it creates the demo's app, which would
    # become the current app of every `celeriac` command (and it needs the demo extra).
    from . import tasks
    from .standin import generate_numbers

    app = tasks.app
    app.conf.broker_url = broker_url
    tasks.hometax_url = standin.url
    await app.clients()  # open the file (and create the tables) before the clock starts
    numbers = generate_numbers(options.count, options.seed)
    try:
        started = time.perf_counter()
        # Concurrent sends on this loop: each is its own short transaction, and the
        # sends overlap their hops to the database thread (faster than delay() in a loop).
        results = await asyncio.gather(*(tasks.check_registration_number.aapply_async((n,)) for n in numbers))
        sent_s = time.perf_counter() - started
        console.print(f"sent {len(numbers)} checks in {sent_s:.2f}s")
        by_id = {r.id: n for r, n in zip(results, numbers, strict=True)}
        records = await follow_progress(app, by_id, started, options.timeout_s, console)
        outcome.elapsed_s = time.perf_counter() - started
    finally:
        await app.close()
    report(options, outcome, numbers, by_id, records, standin, console)


async def follow_progress(app: Celery, by_id: dict[str, str], started: float, timeout_s: float,
                          console: Console) -> dict[str, ResultRecord]:
    """Poll the result store for the unfinished ids until all are done or time runs out."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn  # see run_demo

    store = await app.result_store()
    pending = set(by_id)
    finished: dict[str, ResultRecord] = {}
    columns = (TextColumn("checking"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task("checking", total=len(by_id))
        while pending and time.perf_counter() - started < timeout_s:
            # SQLite cannot notify another process, so this polls; one query per 500 ids.
            found = await store.fetch_many(list(pending))
            for task_id, record in found.items():
                if record.state in READY_STATES:
                    finished[task_id] = record
                    pending.discard(task_id)
            progress.update(bar, completed=len(finished))
            if pending:
                await asyncio.sleep(POLL_INTERVAL_S)
    return finished


def report(options: DemoOptions, outcome: DemoOutcome, numbers: list[str], by_id: dict[str, str],
           records: dict[str, ResultRecord], standin: StandIn, console: Console) -> None:
    from rich.table import Table  # see run_demo

    from .standin import STATUSES, count_statuses, expected_status

    expected: dict[str, int] = {status: n for status, n in count_statuses(numbers).items()}
    checked: collections.Counter[str] = collections.Counter()
    wrong: list[str] = []
    retries = 0
    for task_id, record in records.items():
        retries += record.retries
        status = from_wire(record.result)["status"] if record.state == SUCCESS else f"task {record.state.lower()}"
        checked[status] += 1
        number = by_id[task_id]
        if status != expected_status(number):
            why = f" ({record.exc_type}: {record.exc_message})" if record.exc_type else ""
            wrong.append(f"{number}: expected {expected_status(number)}, got {status}{why}")
    missing = len(numbers) - len(records)
    elapsed = outcome.elapsed_s
    console.print(
        f"[bold]{len(records)} of {len(numbers)} checks done in {elapsed:.2f}s[/] (first send to last "
        f"result seen, {len(records) / elapsed:.0f} checks/s) with one worker process; {retries} retries; "
        f"the stand-in answered {standin.app.requests_served} requests, {standin.app.failures_injected} "
        "of them with HTTP 503"
    )
    table = Table(title="Statuses")
    for name in ("status", "stand-in truth table", "checked", "match"):
        table.add_column(name, justify="left" if name == "status" else "right")
    for status in [*STATUSES, *sorted(set(checked) - set(STATUSES))]:
        matches = expected.get(status, 0) == checked[status]
        table.add_row(status, str(expected.get(status, 0)), str(checked[status]),
                      "[green]yes[/]" if matches else "[red]no[/]")
    console.print(table)
    outcome.ok = not wrong and not missing
    if outcome.ok:
        console.print("[green]All counts match the stand-in's truth table, number by number.[/]")
        return
    if missing:
        console.print(f"[red]{missing} checks did not finish within {options.timeout_s:g}s.[/]")
    for line in wrong[:10]:
        console.print(f"[red]mismatch[/] {line}")
    if len(wrong) > 10:
        console.print(f"[red]... and {len(wrong) - 10} more mismatches[/]")


class WorkerProcess:
    """One ``celeriac worker`` subprocess, known to be ready once it logs its ready line."""

    def __init__(self, broker_url: str, hometax_url: str, concurrency: int) -> None:
        self.command = [sys.executable, "-m", "celeriac", "-A", "celeriac.demo.tasks", "worker",
                        "-c", str(concurrency), "--loglevel=WARNING"]
        self.env = {**os.environ, "CELERIAC_DEMO_BROKER": broker_url, "HOMETAX_URL": hometax_url,
                    "PYTHONUNBUFFERED": "1"}
        self.ready = threading.Event()
        self.noteworthy: list[str] = []
        self.last_lines: collections.deque[str] = collections.deque(maxlen=30)
        self.process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    async def start(self) -> None:
        # The ready line is printed at any log level; WARNING spares the worker a log
        # line per task and per HTTP request.
        self.process = subprocess.Popen(self.command, env=self.env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert self.process.stderr is not None
        self._reader = threading.Thread(target=self._read, args=(self.process.stderr,),
                                        name="demo-worker-log", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + WORKER_START_TIMEOUT_S
        while not await asyncio.to_thread(self.ready.wait, 0.1):
            if self.process.poll() is not None:
                raise click.ClickException(
                    f"the worker exited with code {self.process.returncode} before it was ready:\n"
                    + "\n".join(self.last_lines)
                )
            if time.monotonic() > deadline:
                raise click.ClickException(f"the worker was not ready within {WORKER_START_TIMEOUT_S:g}s")

    def _read(self, stream: IO[str]) -> None:
        # Always drain the pipe: a full pipe would block the worker's logging.
        for line in stream:
            line = line.rstrip("\n")
            self.last_lines.append(line)
            if not self.ready.is_set() and READY_LINE.search(line):
                self.ready.set()
            elif NOTEWORTHY_LINE.search(line) and len(self.noteworthy) < 100:
                self.noteworthy.append(line)

    async def stop(self) -> int:
        """SIGTERM (a warm shutdown), then wait; SIGKILL only if it hangs."""
        process = self.process
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(process.wait, WORKER_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait)
        if self._reader is not None:
            self._reader.join(timeout=5)
        return process.returncode

    def show_noteworthy(self, console: Console) -> None:
        if not self.noteworthy:
            return
        console.print(f"the worker logged {len(self.noteworthy)} warnings or errors; the first ones:")
        for line in self.noteworthy[:10]:
            console.print(f"  {line}", markup=False)
