"""Beat's two numbers: how late a tick starts, and what an idle beat costs.

    python -m bench.beat                          both, on SQLite and Redis (about 4 minutes)
    python -m bench.beat --only latency --backends redis --ticks 200 --interval 0.5
    python -m bench.beat --only idle --entries 100 --seconds 30

latency: a real ``celeriac beat`` and a real ``celeriac worker`` (default settings) on one
broker; one entry every ``--interval`` seconds; each run notes ``time.time()`` first
thing, and the delay is that minus the tick's fire time (from the message's
``periodic_fire_ms`` header): beat's wake-up, the claim-and-enqueue, the worker's
reserve, the dispatch. 20 warm-up ticks are dropped, then ``--ticks`` are kept.

idle: a real ``celeriac beat`` with ``--entries`` daily crontabs, none due during the
run. CPU is the process's user+system time over ``--seconds`` (psutil), after a 5 s
warm-up. Broker calls are counted twice: on Redis, server side (MONITOR, the commands
sent from the beat's own connections); on both, in-process, by running the same ``Beat``
with its broker, state store and result store wrapped to count calls (one call is one
round trip: a Redis script or MGET, a SQLite transaction or SELECT).

Redis: ``--redis-url`` (default ``redis://127.0.0.1:6379/15``) with a fresh key prefix,
deleted afterwards. SQLite: a file in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from celeriac import Celery
from celeriac.schedules import crontab

ROOT = Path(__file__).resolve().parent.parent
WARM_UP_TICKS = 20

# --- the app both processes load (-A bench.beat:app) --------------------------------------

app = Celery("beat-bench", broker=os.environ.get("BENCH_BEAT_BROKER", "memory://"))


def _schedule() -> dict[str, Any]:
    mode = os.environ.get("BENCH_BEAT_MODE", "latency")
    if mode == "latency":
        return {"tick": {"task": "bench.beat.started", "schedule": float(os.environ.get("BENCH_BEAT_INTERVAL", "0.5"))}}
    # Idle: daily crontabs twelve hours away, so none is due while we measure.
    hour = (dt.datetime.now(dt.UTC).hour + 12) % 24
    count = int(os.environ.get("BENCH_BEAT_ENTRIES", "100"))
    return {f"daily-{i}": {"task": "bench.beat.started", "schedule": crontab(minute=i % 60, hour=hour)}
            for i in range(count)}


app.conf.beat_schedule = _schedule()


@app.task(bind=True, name="bench.beat.started")
async def started(self: Any) -> None:
    now = time.time()
    fire_ms = self.request.headers.get("periodic_fire_ms")
    line = f"{fire_ms} {now:.6f}\n"
    fd = os.open(os.environ["BENCH_BEAT_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


# --- processes ------------------------------------------------------------------------------


class Process:
    def __init__(self, args: list[str], env: dict[str, str], ready: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "celeriac", "-A", "bench.beat:app", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                     cwd=ROOT, start_new_session=True)
        self.lines: list[str] = []
        self.is_ready = threading.Event()

        def pump() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.lines.append(line)
                if ready in line:
                    self.is_ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not self.is_ready.wait(30):
            self.stop()
            raise RuntimeError(f"{args[0]} did not start:\n{''.join(self.lines)}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)


@contextlib.contextmanager
def broker_url(backend: str, redis_url: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="beat-bench-") as directory:
            yield f"sqlite:///{directory}/broker.db"
        return
    prefix = f"beat-bench-{uuid.uuid4().hex[:8]}"
    try:
        yield f"{redis_url}{'&' if '?' in redis_url else '?'}key_prefix={prefix}"
    finally:
        import redis

        client = redis.Redis.from_url(redis_url)
        for pattern in (f"{prefix}*", f"{{{prefix}*"):
            for key in client.scan_iter(match=pattern, count=1000):
                client.delete(key)
        client.close()


def env_for(url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ, BENCH_BEAT_BROKER=url, PYTHONPATH=str(ROOT))
    env.update(extra)
    return env


# --- latency --------------------------------------------------------------------------------


def measure_latency(backend: str, redis_url: str, ticks: int, interval_s: float) -> dict[str, Any]:
    with broker_url(backend, redis_url) as url, tempfile.TemporaryDirectory() as directory:
        log = Path(directory) / "runs.log"
        env = env_for(url, BENCH_BEAT_MODE="latency", BENCH_BEAT_INTERVAL=str(interval_s), BENCH_BEAT_LOG=str(log))
        worker = Process(["worker"], env, " ready: queues")
        beat = Process(["beat"], env, " ready: ")
        try:
            wanted = ticks + WARM_UP_TICKS
            deadline = time.monotonic() + wanted * interval_s + 60
            while time.monotonic() < deadline:
                if log.exists() and len(log.read_text().splitlines()) >= wanted:
                    break
                time.sleep(0.5)
        finally:
            beat.stop()
            worker.stop()
        rows = sorted((int(f), float(s)) for f, s in (line.split() for line in log.read_text().splitlines()))
    delays_ms = [start * 1000 - fire for fire, start in rows[WARM_UP_TICKS:WARM_UP_TICKS + ticks]]
    if len(delays_ms) < ticks:
        raise RuntimeError(f"only {len(delays_ms)} ticks ran on {backend}")
    quantiles = statistics.quantiles(delays_ms, n=100, method="inclusive")
    return {"backend": backend, "ticks": len(delays_ms), "p50_ms": statistics.median(delays_ms),
            "p99_ms": quantiles[98], "max_ms": max(delays_ms), "min_ms": min(delays_ms)}


# --- idle cost ------------------------------------------------------------------------------


def measure_idle_process(backend: str, redis_url: str, entries: int, seconds: float) -> dict[str, Any]:
    import psutil

    with broker_url(backend, redis_url) as url, tempfile.TemporaryDirectory() as directory:
        env = env_for(url, BENCH_BEAT_MODE="idle", BENCH_BEAT_ENTRIES=str(entries),
                      BENCH_BEAT_LOG=str(Path(directory) / "runs.log"))
        beat = Process(["beat"], env, " ready: ")
        try:
            process = psutil.Process(beat.proc.pid)
            time.sleep(5)  # warm-up: imports done, first syncs past
            monitored = _monitor_redis(redis_url, process) if backend == "redis" else None
            before = process.cpu_times()
            started_at = time.monotonic()
            time.sleep(seconds)
            after = process.cpu_times()
            elapsed = time.monotonic() - started_at
            redis_calls = monitored() if monitored else None
        finally:
            beat.stop()
    cpu_s = (after.user - before.user) + (after.system - before.system)
    return {"backend": backend, "entries": entries, "seconds": round(elapsed, 1),
            "cpu_percent": 100 * cpu_s / elapsed,
            "redis_commands_per_s": None if redis_calls is None else sum(redis_calls.values()) / elapsed,
            "redis_commands": dict(redis_calls) if redis_calls else None}


def _monitor_redis(redis_url: str, process: Any) -> Any:
    """Count the commands Redis receives from ``process``'s connections until called."""
    import redis

    counted: Counter[str] = Counter()
    stop = threading.Event()
    ports: set[int] = set()

    server_port = redis.connection.parse_url(redis_url).get("port") or 6379

    def refresh_ports() -> None:
        for connection in process.net_connections(kind="tcp"):
            if connection.raddr and connection.raddr.port == server_port:
                ports.add(connection.laddr.port)

    def watch() -> None:
        # Other clients may send binary values: decode them loosely, never stop counting.
        client = redis.Redis.from_url(redis_url.split("?")[0], encoding_errors="replace")
        with client.monitor() as monitor:
            for command in monitor.listen():
                if stop.is_set():
                    break
                if int(command.get("client_port") or 0) in ports:
                    counted[command["command"].split()[0].upper()] += 1

    refresh_ports()
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()

    def finish() -> Counter[str]:
        refresh_ports()
        stop.set()
        # One more command from us, so the monitor loop wakes and sees the stop.
        redis.Redis.from_url(redis_url.split("?")[0]).ping()
        thread.join(5)
        return counted

    return finish


async def measure_idle_calls(backend: str, redis_url: str, entries: int, seconds: float) -> dict[str, Any]:
    """The same idle beat in this process, its clients wrapped to count round trips."""
    from celeriac.beat import Beat

    os.environ["BENCH_BEAT_MODE"] = "idle"
    os.environ["BENCH_BEAT_ENTRIES"] = str(entries)
    with broker_url(backend, redis_url) as url:
        bench_app = Celery("beat-bench-calls", broker=url, set_as_current=False)
        bench_app.conf.beat_schedule = _schedule()
        bench_app.tasks["bench.beat.started"] = started
        beat = Beat(bench_app, handle_signals=False)
        await beat.prepare()
        counts: Counter[str] = Counter()
        for name, target in (("broker", beat.broker), ("state", beat.state.store), ("results", beat.results)):
            if target is not None:
                _count_calls(target, name, counts)
        runner = asyncio.create_task(beat.run_prepared())
        await asyncio.sleep(seconds)
        beat.stop()
        await runner
        await beat.close()
        await bench_app.close()
    return {"backend": backend, "entries": entries, "calls_per_s": sum(counts.values()) / seconds,
            "calls": dict(counts)}


def _count_calls(target: Any, label: str, counts: Counter[str]) -> None:
    for name in ("publish", "fetch", "fetch_many", "store", "reserve", "emit_events"):
        method = getattr(target, name, None)
        if method is None:
            continue

        def counting(*args: Any, _method: Any = method, _name: str = f"{label}.{name}", **kwargs: Any) -> Any:
            counts[_name] += 1
            return _method(*args, **kwargs)

        setattr(target, name, counting)


# --- main -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.beat", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["latency", "idle"])
    parser.add_argument("--backends", default="sqlite,redis")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"))
    parser.add_argument("--ticks", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between ticks (latency)")
    parser.add_argument("--entries", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30.0, help="idle measurement length")
    args = parser.parse_args(argv)
    backends = args.backends.split(",")
    if args.only in (None, "latency"):
        for backend in backends:
            found = measure_latency(backend, args.redis_url, args.ticks, args.interval)
            print(f"latency {backend}: {found['ticks']} ticks every {args.interval}s, fire time -> task start: "
                  f"p50 {found['p50_ms']:.1f} ms, p99 {found['p99_ms']:.1f} ms (min {found['min_ms']:.1f}, "
                  f"max {found['max_ms']:.1f})", flush=True)
    if args.only in (None, "idle"):
        for backend in backends:
            found = measure_idle_process(backend, args.redis_url, args.entries, args.seconds)
            line = (f"idle {backend}: {found['entries']} entries, {found['seconds']} s: CPU "
                    f"{found['cpu_percent']:.2f}%")
            if found["redis_commands_per_s"] is not None:
                line += (f", {found['redis_commands_per_s']:.2f} Redis commands/s from the beat "
                         f"({found['redis_commands']})")
            print(line, flush=True)
            calls = asyncio.run(measure_idle_calls(backend, args.redis_url, args.entries, args.seconds))
            print(f"idle {backend}: in-process count: {calls['calls_per_s']:.2f} broker/store calls per second "
                  f"({calls['calls']})", flush=True)


if __name__ == "__main__":
    main()
