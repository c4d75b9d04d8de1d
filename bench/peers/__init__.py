"""The queues under test: how each worker is started, and with which settings.

Importing this package imports no queue library: the harness reads these records, and
only the driver and worker subprocesses import a peer's ``*_app`` module.

Every worker runs with its CLI's defaults, except that the I/O run lets each queue hold
1,000 tasks in flight (the run is 1,000 tasks of 100 ms, so a lower cap would measure the
cap, not the queue). ``RunMode`` says which of the two a worker is started for.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

RunMode = Literal["default", "io"]
BIN = Path(sys.executable).parent
SIDE_LIBS = Path(__file__).resolve().parent.parent / ".peer-libs"


@dataclass(frozen=True)
class Peer:
    name: str  # the row in the table; --only takes it or its family
    family: str
    module: str  # bench.peers.<x>_app: worker app and producer Client
    distributions: tuple[str, ...]  # reported with their versions
    argv: Callable[[RunMode], list[str]]
    defaults: str  # what "default settings" means for this queue, for the report
    results: str  # how results were turned off
    io_setting: str  # what the I/O run changed
    env: Callable[[RunMode], dict[str, str]] = lambda mode: {}
    # requirements pip installs into SIDE_LIBS/<name>, first on PYTHONPATH for this peer
    side_install: tuple[str, ...] = ()
    io_skip_reason: str | None = None

    @property
    def side_dir(self) -> Path | None:
        return SIDE_LIBS / self.family if self.side_install else None


def _celeriac(mode: RunMode) -> list[str]:
    return [str(BIN / "celeriac"), "-A", "bench.peers.celeriac_app", "worker",
            *(["-c", "1000"] if mode == "io" else [])]


def _celery(pool: str) -> Callable[[RunMode], list[str]]:
    def argv(mode: RunMode) -> list[str]:
        extra = ["-P", "threads"] if pool == "threads" else []
        if mode == "io":
            extra += ["-c", "1000"]
        return [str(BIN / "celery"), "-A", "bench.peers.celery_app", "worker", "--loglevel=WARNING", *extra]

    return argv


def _concurrency_env(mode: RunMode) -> dict[str, str]:
    return {"BENCH_CONCURRENCY": "1000"} if mode == "io" else {}


CELERIAC_DEFAULTS = "1 process, -c 100, leases + revoke checks + events on, acks late, uvloop"

PEERS: tuple[Peer, ...] = (
    Peer(
        name="celeriac", family="celeriac", module="bench.peers.celeriac_app",
        distributions=("celeriac", "redis"), argv=_celeriac,
        defaults=f"{CELERIAC_DEFAULTS}; async def tasks on the event loop",
        results="ignore_result=True per task", io_setting="-c 1000",
    ),
    Peer(
        name="celeriac-sync", family="celeriac", module="bench.peers.celeriac_app",
        distributions=("celeriac", "redis"), argv=_celeriac,
        defaults=f"{CELERIAC_DEFAULTS}; plain def tasks on the thread pool",
        results="ignore_result=True per task", io_setting="-c 1000",
    ),
    Peer(
        name="celery-prefork", family="celery", module="bench.peers.celery_app",
        distributions=("celery", "kombu", "redis"), argv=_celery("prefork"),
        defaults="prefork -c 2 (CPU count), prefetch x4, acks early",
        results="no result backend + ignore_result=True", io_setting="(not run)",
        io_skip_reason="n/a: prefork -c 2 runs 2 at a time (>= 50 s by construction); see celery-threads",
    ),
    Peer(
        name="celery-threads", family="celery", module="bench.peers.celery_app",
        distributions=("celery", "kombu", "redis"), argv=_celery("threads"),
        defaults="-P threads -c 2 (CPU count), prefetch x4, acks early",
        results="no result backend + ignore_result=True", io_setting="-c 1000",
    ),
    Peer(
        name="dramatiq", family="dramatiq", module="bench.peers.dramatiq_app",
        distributions=("dramatiq", "redis"),
        argv=lambda mode: [str(BIN / "dramatiq"), "bench.peers.dramatiq_app",
                           *(["--threads", "500"] if mode == "io" else [])],
        defaults="2 processes (CPU count) x 8 threads, default middleware",
        results="no Results middleware", io_setting="--threads 500 (2 x 500)",
    ),
    Peer(
        name="arq", family="arq", module="bench.peers.arq_app",
        distributions=("arq", "redis"),
        argv=lambda mode: [sys.executable, str(SIDE_LIBS / "arq" / "bin" / "arq"),
                           "bench.peers.arq_app.WorkerSettings"],
        env=_concurrency_env,
        defaults="1 process, max_jobs=10, poll_delay=0.5 s",
        results="keep_result=0 per function", io_setting="max_jobs=1000",
        side_install=("arq",),
    ),
    Peer(
        name="streaq", family="streaq", module="bench.peers.streaq_app",
        distributions=("streaq", "coredis"),
        argv=lambda mode: [str(BIN / "streaq"), "run", "bench.peers.streaq_app:worker"],
        env=_concurrency_env,
        defaults="1 process, concurrency=16, prefetch 16+16",
        results="ttl=0 per task", io_setting="concurrency=1000",
    ),
    Peer(
        name="taskiq", family="taskiq", module="bench.peers.taskiq_app",
        distributions=("taskiq", "taskiq-redis", "redis"),
        argv=lambda mode: [str(BIN / "taskiq"), "worker", "bench.peers.taskiq_app:broker",
                           *(["--max-async-tasks", "500"] if mode == "io" else [])],
        defaults="2 processes x 100 async tasks, RedisStreamBroker, ack when saved",
        results="no result backend", io_setting="--max-async-tasks 500 (2 x 500)",
    ),
)

BASELINE = "celeriac"
FAMILIES = tuple(dict.fromkeys(p.family for p in PEERS))


def select(only: str | None) -> list[Peer]:
    """Peers named in ``--only`` (row names or families), in table order."""
    if not only:
        return list(PEERS)
    wanted = {w.strip() for w in only.split(",") if w.strip()}
    unknown = wanted - {p.name for p in PEERS} - set(FAMILIES)
    if unknown:
        names = ", ".join([*FAMILIES, *(p.name for p in PEERS if p.name not in FAMILIES)])
        raise SystemExit(f"--only: unknown queue(s) {', '.join(sorted(unknown))}; expected some of {names}")
    return [p for p in PEERS if p.name in wanted or p.family in wanted]
