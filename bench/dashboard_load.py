"""The dashboard under load: page times over a large store, and its memory over an hour.

    python -m bench.dashboard_load pages --url sqlite:////tmp/dash.db --records 1000000
    python -m bench.dashboard_load pages --url redis://127.0.0.1:6379/13 --records 1000000
    python -m bench.dashboard_load soak --url redis://127.0.0.1:6379/13 --rate 500 --minutes 60

``pages`` writes ``--records`` finished tasks into the server the URL names, through the
same calls a worker makes (result records, in batches; a ``task-received``,
``task-started`` and outcome event for each, which the capped event log trims as it goes;
per-minute aggregates for the last hour), then starts ``celeriac dashboard`` on that
server and times each page (``--samples`` requests each, one at a time): p50, p95, max.
The first request after start-up is reported on its own.

``soak`` runs one worker (``-c 100``) and the dashboard on the server, sends ``--rate``
no-op tasks a second for ``--minutes``, keeps one SSE stream open and loads the overview
and task list every 5 s (a browser left open), and samples the dashboard's RSS every 30 s.
It prints the samples and a verdict: the highest RSS, and the growth from the end of the
first tenth of the run to the end.

Both flush the Redis database or delete the SQLite file they are given, before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil

from celeriac.events import TASK_FAILED, TASK_SUCCEEDED, outcome_event, received_event, started_event
from celeriac.message import ResultRecord
from celeriac.servers import BrokerOptions, open_clients
from celeriac.stats import StatsBatch

BATCH = 5000
PAGES = ("/", "/tasks", "/api/tasks", "/tasks?state=FAILURE", "/tasks?name=bench.report",
         "/queues", "/workers", "/dead-letters", "/metrics")

APP_MODULE = """\
from celeriac import Celery

app = Celery("dashbench", broker={url!r}, backend={url!r})
app.conf.worker_send_task_events = True


@app.task(name="bench.noop", ignore_result=True)
async def noop(i: int) -> None:
    return None
"""


def wipe(url: str) -> None:
    if url.startswith("redis"):
        import redis

        redis.Redis.from_url(url).flushdb()
    else:
        path = url.split(":///", 1)[1]
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path + suffix)


async def fill(url: str, records: int) -> float:
    """``records`` finished tasks written the way workers write them; returns seconds taken."""
    clients = open_clients(url, url, BrokerOptions(), 86400.0 * 7)
    await clients.broker.connect()
    assert clients.store is not None
    if clients.store is not clients.broker:
        await clients.store.connect()
    started = time.perf_counter()
    now = time.time()
    names = ("bench.report", "bench.email", "bench.resize", "bench.sync")
    try:
        for first in range(0, records, BATCH):
            batch, events = [], []
            stats = StatsBatch()
            for i in range(first, min(first + BATCH, records)):
                ts = now - (records - i) * 0.01  # one every 10 ms, the newest now
                task_id = str(uuid.UUID(int=i))
                name = names[i % len(names)]
                failed = i % 50 == 0
                batch.append(ResultRecord(
                    task_id=task_id, state="FAILURE" if failed else "SUCCESS", name=name,
                    result=None if failed else {"rows": i},
                    exc_type="builtins.ValueError" if failed else None,
                    exc_message=f"bad row {i}" if failed else None,
                    date_done_ms=int(ts * 1000), date_started_ms=int((ts - 0.02) * 1000),
                    worker="bench@host", args=[i], kwargs={}, fencing_token=1))
                events += [
                    received_event("bench@host", task_id, name, "celery", 0, ts - 0.03, None),
                    started_event("bench@host", task_id, name, "celery", 0, ts - 0.02, 0.01),
                    outcome_event(TASK_FAILED if failed else TASK_SUCCEEDED, "bench@host", task_id, name,
                                  queue="celery", started_ts=ts - 0.02, runtime_s=0.02, retries=0,
                                  exception="ValueError('bad row')" if failed else None,
                                  result=None if failed else "{'rows': ...}"),
                ]
                if ts > now - 3600:
                    stats.started(ts - 0.02, name, "celery", 0.01)
                    stats.finished(ts, name, "celery", "failed" if failed else "succeeded", 0.02)
            await clients.store.store(batch)
            await clients.control.emit_events(events, stats=stats.take())
            if first // BATCH % 20 == 0:
                print(f"  {first + len(batch):,} of {records:,} written", flush=True)
    finally:
        await clients.broker.close()
        if clients.store is not clients.broker:
            await clients.store.close()
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def app_module(url: str) -> Iterator[dict[str, str]]:
    with tempfile.TemporaryDirectory() as where:
        Path(where, "dashbench.py").write_text(APP_MODULE.format(url=url))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([where, os.environ.get("PYTHONPATH", "")])}
        yield env


@contextlib.contextmanager
def running(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield proc
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def dashboard_argv(port: int) -> list[str]:
    return [sys.executable, "-m", "celeriac", "-A", "dashbench:app", "dashboard", "--port", str(port),
            "--loglevel", "WARNING"]


def wait_up(base: str, proc: subprocess.Popen[bytes], log: Path) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < 60:
        if proc.poll() is not None:
            raise SystemExit(f"the dashboard exited ({proc.returncode}):\n{log.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(base + "/api/openapi.json", timeout=5)
            return time.perf_counter() - started
        time.sleep(0.1)
    raise SystemExit(f"the dashboard did not answer within 60 s:\n{log.read_text()}")


def timed_get(client: httpx.Client, path: str) -> float:
    started = time.perf_counter()
    response = client.get(path)
    response.raise_for_status()
    return (time.perf_counter() - started) * 1000


def pages(args: argparse.Namespace) -> None:
    wipe(args.url)
    print(f"writing {args.records:,} finished tasks to {args.url}")
    seconds = asyncio.run(fill(args.url, args.records))
    print(f"written in {seconds:.0f} s")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = Path(tempfile.gettempdir(), "dashbench-pages.log")
    with app_module(args.url) as env, running(dashboard_argv(port), env, log) as proc:
        print(f"dashboard up in {wait_up(base, proc, log):.1f} s")
        with httpx.Client(base_url=base, timeout=60) as client:
            first = timed_get(client, "/tasks")
            print(f"first /tasks after start-up: {first:.0f} ms")
            rows = []
            for path in PAGES:
                times = sorted(timed_get(client, path) for _ in range(args.samples))
                p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
                rows.append((path, statistics.median(times), p95, times[-1]))
            known = client.get("/api/tasks").json().get("known")
        rss = psutil.Process(proc.pid).memory_info().rss / 1e6
    wipe(args.url)
    print(f"\n{args.records:,} records on {args.url.split(':', 1)[0]}; task rows the dashboard holds: {known:,}; "
          f"dashboard RSS {rss:.0f} MB; {args.samples} requests per page")
    print("| page | p50 ms | p95 ms | max ms |\n|---|---|---|---|")
    for path, p50, p95, worst in rows:
        print(f"| `{path}` | {p50:.1f} | {p95:.1f} | {worst:.1f} |")


def produce(rate: float, until: float, sent: list[int]) -> None:
    """``rate`` tasks a second in batches of a tenth of a second, from a thread of its own."""
    import dashbench  # the generated module, on PYTHONPATH

    from celeriac import group

    per_tick = max(1, round(rate / 10))
    tick = time.monotonic()
    while time.monotonic() < until:
        group(dashbench.noop.s(i) for i in range(per_tick)).apply_async()
        sent[0] += per_tick
        tick += 0.1
        time.sleep(max(0.0, tick - time.monotonic()))


def browse(base: str, until: float) -> None:
    """A browser left open: the live stream, and the overview and task list every 5 s."""
    def stream() -> None:
        while time.monotonic() < until:
            with contextlib.suppress(httpx.HTTPError), httpx.stream("GET", base + "/stream", timeout=30) as r:
                for _ in r.iter_lines():
                    if time.monotonic() >= until:
                        return

    threading.Thread(target=stream, daemon=True).start()
    with httpx.Client(base_url=base, timeout=30) as client:
        while time.monotonic() < until:
            for path in ("/", "/tasks", "/api/overview"):
                with contextlib.suppress(httpx.HTTPError):
                    client.get(path)
            time.sleep(5)


def soak(args: argparse.Namespace) -> None:
    wipe(args.url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    tmp = Path(tempfile.gettempdir())
    samples: list[tuple[float, float, int]] = []
    sent = [0]
    with app_module(args.url) as env:
        sys.path.insert(0, env["PYTHONPATH"].split(os.pathsep)[0])
        worker_argv = [sys.executable, "-m", "celeriac", "-A", "dashbench:app", "worker", "-c", "100",
                       "--loglevel", "WARNING"]
        with running(worker_argv, env, tmp / "dashbench-worker.log"), \
                running(dashboard_argv(port), env, tmp / "dashbench-soak.log") as dash:
            wait_up(base, dash, tmp / "dashbench-soak.log")
            started = time.monotonic()
            until = started + args.minutes * 60
            threading.Thread(target=produce, args=(args.rate, until, sent), daemon=True).start()
            threading.Thread(target=browse, args=(base, until), daemon=True).start()
            process = psutil.Process(dash.pid)
            while time.monotonic() < until:
                rss = process.memory_info().rss / 1e6
                samples.append(((time.monotonic() - started) / 60, rss, sent[0]))
                print(f"{samples[-1][0]:6.1f} min  RSS {rss:6.1f} MB  sent {sent[0]:,}", flush=True)
                time.sleep(min(30.0, max(0.0, until - time.monotonic())))
            samples.append((args.minutes, process.memory_info().rss / 1e6, sent[0]))
            done = httpx.get(base + "/api/overview", timeout=30).json()
    wipe(args.url)
    tenth = next(s for s in samples if s[0] >= args.minutes / 10)
    peak = max(s[1] for s in samples)
    print(f"\n{sent[0]:,} tasks sent in {args.minutes} min ({sent[0] / (args.minutes * 60):.0f}/s); "
          f"dashboard RSS at {tenth[0]:.0f} min {tenth[1]:.1f} MB, at the end {samples[-1][1]:.1f} MB "
          f"(growth {samples[-1][1] - tenth[1]:+.1f} MB), highest {peak:.1f} MB")
    summary = done.get("summary", {})
    print(f"the dashboard's count at the end: {summary.get('succeeded', 0):,} succeeded, "
          f"{summary.get('failed', 0):,} failed, {summary.get('workers_online', 0)} worker(s) online")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard_load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pages", help="page times over a store of --records finished tasks")
    p.add_argument("--url", required=True, help="sqlite:///<file> or redis://.../<db> (flushed)")
    p.add_argument("--records", type=int, default=1_000_000)
    p.add_argument("--samples", type=int, default=40)
    s = sub.add_parser("soak", help="the dashboard's RSS beside a busy worker")
    s.add_argument("--url", required=True, help="sqlite:///<file> or redis://.../<db> (flushed)")
    s.add_argument("--rate", type=float, default=500)
    s.add_argument("--minutes", type=float, default=60)
    args = parser.parse_args(argv)
    if args.url.startswith("redis") and args.url.rstrip("/").endswith(("/0", ":6379")):
        raise SystemExit("give a dedicated Redis database (e.g. redis://127.0.0.1:6379/13): it is flushed")
    {"pages": pages, "soak": soak}[args.command](args)


if __name__ == "__main__":
    main()
