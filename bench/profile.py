"""Where a celeriac worker's time goes during the no-op drain: py-spy, summarised.

``python -m bench --profile [--server redis|postgres|sqlite]`` queues the drain's tasks,
starts the default worker under ``py-spy record`` (sampling, so the worker runs
unmodified), stops it once all tasks are done, and writes the heaviest functions by own
time and by inclusive time, and own time by package, to
``bench/results/profile-drain.txt`` (``profile-drain-postgres.txt``, ...). py-spy leaves
out idle samples (a thread waiting in epoll or a lock), so the percentages are of busy time.
"""

from __future__ import annotations

import collections
import re
import signal
import subprocess
import time
from pathlib import Path

from .harness import REPO_ROOT, BenchFailure, Harness
from .metrics import Sizes, watch_until_done
from .peers import BIN, Server, find

SAMPLE_RATE_HZ = 250
FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^():]*)(?::\d+)?\)$")


def profile_drain(harness: Harness, sizes: Sizes, out_path: Path, server: Server = "redis") -> Path:
    peer = find("celeriac", server)
    raw_path = out_path.with_suffix(".raw")
    harness.use(peer)
    harness.driver(peer, "fill", "noop", str(sizes.drain), timeout_s=900)
    worker = harness.start_worker(peer, "default", "profile")
    spy: subprocess.Popen[bytes] | None = None
    try:
        # Attach once tasks complete, so start-up (imports, connecting) stays out of it.
        while harness.done_count() == 0:
            if not worker.is_alive():
                raise BenchFailure(f"failed: worker exited: {worker.log_tail(1)}")
            time.sleep(0.005)
        argv = [str(BIN / "py-spy"), "record", "--nonblocking", "--format", "raw", "--rate",
                str(SAMPLE_RATE_HZ), "--output", str(raw_path), "--pid", str(worker.process.pid)]
        spy = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        attached_at = time.perf_counter()
        run = watch_until_done(harness, worker, sizes.drain, stall_s=60)
        profiled_s = time.perf_counter() - attached_at
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
        _, spy_errors = spy.communicate(timeout=60)
    finally:
        if spy is not None and spy.poll() is None:
            spy.kill()
            spy.wait()
        harness.stop_worker(worker)
        harness.flush()
    if not raw_path.exists():
        raise BenchFailure(f"failed: py-spy wrote no profile: {spy_errors.decode(errors='replace')[-200:]}")
    header = (f"celeriac worker on {server} (defaults: -c 100, async no-op tasks, results off) draining "
              f"{sizes.drain:,} queued tasks: {run.seconds:.2f} s from spawn, "
              f"{sizes.drain / run.seconds:,.0f} tasks/s; {sizes.drain / run.steady_seconds:,.0f}/s from the "
              f"first completion. py-spy attached at the first completion and sampled {profiled_s:.2f} s "
              f"at {SAMPLE_RATE_HZ} Hz (non-blocking). uvloop calls coroutines from C, so py-spy's stacks for "
              f"them start at the coroutine: own time is exact, inclusive time undercounts callers.\n"
              f"worker: {' '.join(worker.argv)}\nprofiler: {' '.join(argv)}\n\n")
    out_path.write_text(header + summarise(raw_path.read_text()))
    return out_path


def summarise(raw: str, top: int = 30) -> str:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    by_package: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_label(frame) for frame in stack.split(";")]
        total += count
        own[frames[-1]] += count
        by_package[_package(stack.split(";")[-1])] += count
        for label in set(frames):
            inclusive[label] += count
    if total == 0:
        return "no busy samples\n"
    lines = [f"busy samples: {total:,}", "", "own time by package:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in by_package.most_common(15)]
    lines += ["", f"top {top} functions by own time (the frame on top of the stack):"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines += ["", f"top {top} functions by inclusive time (anywhere on the stack):"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines) + "\n"


def _label(frame: str) -> str:
    """``function (path/to/file.py:123)`` -> ``function (file.py relative to its package)``."""
    match = FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    return f"{match['function']} ({_short_path(match['file'])})"


def _short_path(path: str) -> str:
    for marker in ("site-packages/", f"{REPO_ROOT}/"):
        if marker in path:
            return path.split(marker, 1)[1]
    stdlib = re.search(r"/lib/python3\.\d+/(.*)$", path)
    return stdlib.group(1) if stdlib else path


def _package(frame: str) -> str:
    match = FRAME.match(frame.strip())
    if not match:
        return "?"
    short = _short_path(match["file"])
    head = short.split("/", 1)[0]
    if head.endswith(".py"):
        return f"stdlib {head}" if "site-packages" not in match["file"] else head
    return head
