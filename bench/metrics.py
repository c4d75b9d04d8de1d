"""The seven measurements, each taken the same way for every queue.

Timed spans, and why they start where they do:

enqueue   the producer's loop of single sends, in the driver process, after a warm-up
          of 100 sends (connection set-up and lazy imports are not the queue's rate);
          median of three runs.
batch     one call of the batch API for N tasks, after a warm-up batch of 10; median
          of three runs.
drain     N no-op tasks are queued first, with no worker running; the clock starts just
          before the worker process is spawned and stops when the completion counter
          (counted in the worker, added to Redis every 5 ms by a thread: the same code
          for every queue, peers/common.py) reaches N, so start-up counts.
          The steady rate (first completion to last) is recorded as a detail.
io        the same, with 1,000 tasks that each GET a server answering after 100 ms.
cpu       the same, with 2,000 tasks that each spend 5 ms of their thread's CPU time in
          pure Python (holding the GIL) before counting: one process drains at most
          ~200/s whatever its pool, so only worker processes add throughput.
latency   an idle worker, ready (a task round trip), then one task at a time, 20 to
          520 ms apart (random, the same for every queue): the driver notes time.time()
          before the send, the task notes it first thing.
rss       peak of the worker's process-tree RSS, sampled every 100 ms during the drain.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .harness import BenchFailure, Harness, Worker
from .peers import Peer


@dataclass(frozen=True)
class Metric:
    key: str
    title: str
    unit: str
    higher_is_better: bool


METRICS: tuple[Metric, ...] = (
    Metric("enqueue", "sync enqueue", "tasks/s", True),
    Metric("batch", "batch enqueue", "tasks/s", True),
    Metric("drain", "no-op drain", "tasks/s", True),
    Metric("io", "I/O makespan", "s", False),
    Metric("cpu", "CPU-bound drain", "tasks/s", True),
    Metric("latency_p50", "latency p50", "ms", False),
    Metric("latency_p99", "latency p99", "ms", False),
    Metric("rss", "worker peak RSS", "MB", False),
)
METRIC_BY_KEY = {m.key: m for m in METRICS}
# What --metrics accepts, and the runs each needs (latency is one run, two columns).
SELECTABLE = ("enqueue", "batch", "drain", "io", "cpu", "latency", "rss")


@dataclass(frozen=True)
class Sizes:
    enqueue: int
    batch: int
    drain: int
    io: int
    cpu: int
    latency_warmup: int
    latency_samples: int
    # Drains per queue; the median counts. One drain of a fast queue lasts about a second,
    # and on this shared machine two in a row differed by up to a fifth.
    drain_runs: int = 1


FULL = Sizes(enqueue=5000, batch=5000, drain=20_000, io=1000, cpu=2000, latency_warmup=20, latency_samples=200,
             drain_runs=3)
QUICK = Sizes(enqueue=300, batch=300, drain=1000, io=100, cpu=200, latency_warmup=5, latency_samples=20)


@dataclass
class Outcome:
    """A figure, or the reason there is none ("failed: ...", "n/a: ...")."""

    value: float | None = None
    note: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


Results = dict[str, Outcome]  # metric key -> outcome, for one queue


# Enqueue runs are short (a few seconds) and vary by +-20% run to run on this machine,
# so each is taken ENQUEUE_REPEATS times and the median reported.
ENQUEUE_REPEATS = 3


def _median_rate(harness: Harness, peer: Peer, op: str, n: int) -> Outcome:
    rates: list[float] = []
    reply: dict[str, Any] = {}
    for _ in range(ENQUEUE_REPEATS):
        harness.flush()
        reply = harness.driver(peer, op, str(n))
        harness.flush()
        if "na" in reply:
            return Outcome(note=f"n/a: {reply['na']}")
        rates.append(reply["n"] / reply["seconds"])
    details: dict[str, Any] = {"n": n, "runs_per_s": ", ".join(f"{r:,.0f}" for r in rates)}
    if "api" in reply:
        details["api"] = reply["api"]
    return Outcome(statistics.median(rates), details=details)


def measure_enqueue(harness: Harness, peer: Peer, sizes: Sizes) -> Outcome:
    return _median_rate(harness, peer, "enqueue", sizes.enqueue)


def measure_batch(harness: Harness, peer: Peer, sizes: Sizes) -> Outcome:
    return _median_rate(harness, peer, "batch", sizes.batch)


@dataclass
class DrainRun:
    seconds: float
    steady_seconds: float
    peak_rss_bytes: int
    errors: int = 0  # I/O tasks whose GET failed (they still count as done)


def run_to_completion(harness: Harness, peer: Peer, kind: str, n: int, *, stall_s: float) -> DrainRun:
    """Queue n tasks, start a worker, and time it until the counter says all n are done."""
    harness.flush()
    harness.driver(peer, "fill", kind, str(n), timeout_s=900)
    worker = harness.start_worker(peer, "io" if kind == "io" else "default", kind)
    try:
        run = watch_until_done(harness, worker, n, stall_s)
        run.errors = int(harness.store.get("bench:errors") or 0)
        return run
    finally:
        harness.stop_worker(worker)
        harness.flush()


def watch_until_done(harness: Harness, worker: Worker, n: int, stall_s: float) -> DrainRun:
    peak_rss = 0
    first_done_at: float | None = None
    last_progress_at, last_done = time.perf_counter(), 0
    next_rss_at = 0.0
    while True:
        done = harness.done_count()
        now = time.perf_counter()
        if done >= n:
            peak_rss = max(peak_rss, worker.tree_rss_bytes())
            steady = now - first_done_at if first_done_at is not None else now - worker.started_at
            return DrainRun(now - worker.started_at, steady, peak_rss)
        if done and first_done_at is None:
            first_done_at = now
        if done != last_done:
            last_progress_at, last_done = now, done
        elif now - last_progress_at > stall_s:
            raise BenchFailure(f"failed: stalled at {done}/{n} for {stall_s:.0f}s ({worker.log_tail(1)[:120]})")
        if not worker.is_alive():
            raise BenchFailure(f"failed: worker exited ({worker.process.returncode}) at {done}/{n}: "
                               f"{worker.log_tail(1)[:120]}")
        if now >= next_rss_at:
            peak_rss = max(peak_rss, worker.tree_rss_bytes())
            next_rss_at = now + 0.1
        time.sleep(0.005)  # polling a counter: 200 GETs/s cost Redis next to nothing


def measure_drain(harness: Harness, peer: Peer, sizes: Sizes) -> tuple[Outcome, Outcome]:
    n = min(sizes.drain, peer.drain_max or sizes.drain)  # a queue too slow for the full drain runs fewer
    runs = [run_to_completion(harness, peer, "noop", n, stall_s=60) for _ in range(sizes.drain_runs)]
    run = sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]  # the median
    drain = Outcome(n / run.seconds, details={
        "n": n, "seconds": run.seconds, "steady_rate": n / run.steady_seconds,
        "startup_s": run.seconds - run.steady_seconds, **({"of_tasks": n} if n < sizes.drain else {}),
        "runs_per_s": [round(n / r.seconds) for r in runs],
    })
    return drain, Outcome(max(r.peak_rss_bytes for r in runs) / 1e6)


def measure_io(harness: Harness, peer: Peer, sizes: Sizes) -> Outcome:
    if peer.io_skip_reason:
        return Outcome(note=peer.io_skip_reason)
    run = run_to_completion(harness, peer, "io", sizes.io, stall_s=60)
    return Outcome(run.seconds, details={"n": sizes.io, "steady_s": run.steady_seconds, "errors": run.errors})


def measure_cpu(harness: Harness, peer: Peer, sizes: Sizes) -> Outcome:
    run = run_to_completion(harness, peer, "cpu", sizes.cpu, stall_s=120)
    return Outcome(sizes.cpu / run.seconds, details={
        "n": sizes.cpu, "seconds": run.seconds, "steady_rate": sizes.cpu / run.steady_seconds,
        "startup_s": run.seconds - run.steady_seconds,
    })


def measure_io_floor(harness: Harness, sizes: Sizes) -> float | None:
    """N concurrent GETs from one process, no queue: what the HTTP client alone costs."""
    import json
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "bench.io_floor", harness.http_url, str(sizes.io)],
                            capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        return None
    seconds: float = json.loads(result.stdout.strip().splitlines()[-1])["seconds"]
    return seconds


def measure_latency(harness: Harness, peer: Peer, sizes: Sizes) -> tuple[Outcome, Outcome]:
    harness.flush()
    worker = harness.start_worker(peer, "default", "latency")
    try:
        try:
            harness.driver(peer, "ping", "60", timeout_s=90)
        except BenchFailure as exc:
            raise BenchFailure(f"{exc} ({worker.log_tail(1)[:120]})") from exc
        reply = harness.driver(peer, "latency", str(sizes.latency_warmup), str(sizes.latency_samples))
    finally:
        harness.stop_worker(worker)
        harness.flush()
    samples: list[float] = reply["samples_ms"]
    centiles = statistics.quantiles(samples, n=100, method="inclusive")
    details = {"samples": len(samples), "min_ms": min(samples), "max_ms": max(samples)}
    return Outcome(centiles[49], details=details), Outcome(centiles[98], details=details)


Step = tuple[str, Callable[[Harness, Peer, Sizes], dict[str, Outcome]]]


def steps_for(selected: list[str]) -> list[Step]:
    """The runs needed for the selected metrics, in order; drain also yields rss."""
    steps: list[Step] = []
    if "enqueue" in selected:
        steps.append(("enqueue", lambda h, p, s: {"enqueue": measure_enqueue(h, p, s)}))
    if "batch" in selected:
        steps.append(("batch", lambda h, p, s: {"batch": measure_batch(h, p, s)}))
    if "latency" in selected:
        steps.append(("latency", lambda h, p, s: dict(zip(("latency_p50", "latency_p99"),
                                                          measure_latency(h, p, s), strict=True))))
    if "drain" in selected or "rss" in selected:
        steps.append(("drain", lambda h, p, s: dict(zip(("drain", "rss"), measure_drain(h, p, s), strict=True))))
    if "io" in selected:
        steps.append(("io", lambda h, p, s: {"io": measure_io(h, p, s)}))
    if "cpu" in selected:
        steps.append(("cpu", lambda h, p, s: {"cpu": measure_cpu(h, p, s)}))
    return steps


def keys_of(step: str) -> tuple[str, ...]:
    return {"latency": ("latency_p50", "latency_p99"), "drain": ("drain", "rss")}.get(step, (step,))
