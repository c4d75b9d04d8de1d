"""``python -m bench.soak``: the prefork pool recycling a child after every task, for a long time.

    python -m bench.soak                                      20,000 tasks, -P prefork -c 2 --max-tasks-per-child 1
    python -m bench.soak --tasks 2000 --worker-args "-P prefork -c 2 --max-memory-per-child 1"

N no-op tasks (each one ``INCR``: ``BENCH_COUNT_EACH``, since a child exits after its task)
are queued, then one worker drains
them. The run fails if the counter stops moving for ``--stall-s`` (something hung), ends
above N (a task ran twice) or below it (one was lost), if a dead letter appears, or if
the worker leaves a process behind after SIGTERM. Prints one JSON line: counts, seconds,
children recycled (from the worker's INFO log).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import signal
import sys
import time
from pathlib import Path

from .harness import BenchFailure, Harness, _descendants
from .peers import PEERS

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--worker-args", default="-P prefork -c 2 --max-tasks-per-child 1")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"),
                        help="a dedicated database: it is flushed (default db 14)")
    parser.add_argument("--stall-s", type=float, default=60.0)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)

    base = next(p for p in PEERS if p.name == "celeriac-prefork")  # plain def tasks, as prefork runs them
    argv_of = [*base.argv("default")[:4], *shlex.split(args.worker_args), "--loglevel=INFO"]
    peer = dataclasses.replace(base, argv=lambda mode: argv_of)
    os.environ["BENCH_COUNT_EACH"] = "1"  # the workers' environment: count before the child exits
    harness = Harness(redis_url=args.redis_url, log_dir=RESULTS_DIR / "logs")
    try:
        harness.flush()
        harness.driver(peer, "fill", "noop", str(args.tasks), timeout_s=900)
        worker = harness.start_worker(peer, "default", "soak")
        started = time.perf_counter()
        last, last_change = -1, started
        while (done := harness.done_count()) < args.tasks:
            now = time.perf_counter()
            if done != last:
                last, last_change = done, now
            elif now - last_change > args.stall_s:
                raise BenchFailure(f"hung: stalled at {done}/{args.tasks} for {args.stall_s:.0f}s")
            if not worker.is_alive():
                raise BenchFailure(f"the worker exited ({worker.process.returncode}) at {done}/{args.tasks}")
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        time.sleep(1.0)  # anything still running would add to the counter now
        done = harness.done_count()
        # The dead-letter queue's keys (servers/redis/keys.py: {P:Q}:dead, {P:Q}:dead-letters).
        dead = [key.decode() for pattern in ("*:dead", "*:dead-letters")
                for key in harness.store.scan_iter(match=pattern)]
        tree = _descendants(worker.process.pid)
        worker.process.send_signal(signal.SIGTERM)
        code = worker.process.wait(timeout=60)
        time.sleep(1.0)
        left = [p.pid for p in tree if p.is_running() and p.status() != "zombie"]
        recycled = worker.log_path.read_text(errors="replace").count("recycled")
        report = {"tasks": args.tasks, "done": done, "lost": max(0, args.tasks - done),
                  "ran_twice": max(0, done - args.tasks), "dead_letter_keys": dead, "seconds": round(seconds, 2),
                  "rate_per_s": round(args.tasks / seconds, 1), "children_recycled": recycled,
                  "worker_exit_code": code, "processes_left": left, "worker": shlex.join(argv_of)}
        print(json.dumps(report), flush=True)
        if done != args.tasks or dead or code != 0 or left:
            raise SystemExit(1)
    finally:
        harness.close()
        harness.flush()


if __name__ == "__main__":
    main()
