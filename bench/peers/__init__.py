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

from . import common  # no queue library: names and URLs only

RunMode = Literal["default", "io"]
# The server a table compares queues on: each queue's broker is this server (completions
# are counted in Redis for every table, the same cost for every queue).
Server = Literal["redis", "postgres", "sqlite"]
SERVERS: tuple[Server, ...] = ("redis", "postgres", "sqlite")
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
    # Fewer tasks for the drain when the queue is too slow for 20,000 (the note says so).
    drain_max: int | None = None
    server: Server = "redis"  # whose table the row is in; names are unique within a server

    @property
    def side_dir(self) -> Path | None:
        return SIDE_LIBS / self.family if self.side_install else None


def _celeriac(mode: RunMode) -> list[str]:
    return [str(BIN / "celeriac"), "-A", "bench.peers.celeriac_app", "worker",
            *(["-c", "1000"] if mode == "io" else [])]


def _celeriac_prefork(mode: RunMode) -> list[str]:
    return [str(BIN / "celeriac"), "-A", "bench.peers.celeriac_app", "worker", "-P", "prefork"]


def _celeriac_processes(mode: RunMode) -> list[str]:
    # The I/O run's 1,000 in flight, spread over the two processes.
    return [str(BIN / "celeriac"), "-A", "bench.peers.celeriac_app", "worker", "--processes", "2",
            *(["-c", "500"] if mode == "io" else [])]


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
        name="celeriac-prefork", family="celeriac", module="bench.peers.celeriac_app",
        distributions=("celeriac", "redis"), argv=_celeriac_prefork,
        defaults="-P prefork -c 2 (CPU count); plain def tasks in the children, leases + events on",
        results="ignore_result=True per task", io_setting="(not run)",
        io_skip_reason="n/a: prefork -c 2 runs 2 at a time (>= 50 s by construction); see celeriac",
    ),
    Peer(
        name="celeriac-processes", family="celeriac", module="bench.peers.celeriac_app",
        distributions=("celeriac", "redis"), argv=_celeriac_processes,
        defaults=f"--processes 2 (one per CPU), each {CELERIAC_DEFAULTS.removeprefix('1 process, ')}; "
                 "async def tasks",
        results="ignore_result=True per task", io_setting="-c 500 per process (2 x 500)",
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


# --- PostgreSQL: every queue on the same database, each in a schema of its own --------

def _procrastinate(mode: RunMode) -> list[str]:
    # --concurrency 100, celeriac's -c: its default of 1 drains ~26 tasks/s here, a 13-minute
    # drain that would measure its setting, not its queue.
    return [sys.executable, "-m", "procrastinate", "--app=bench.peers.procrastinate_app.app", "worker",
            "--concurrency", "1000" if mode == "io" else "100"]


def _pgqueuer(mode: RunMode) -> list[str]:
    return [sys.executable, "-m", "pgqueuer", "run", "bench.peers.pgqueuer_app:main"]


def _huey(mode: RunMode) -> list[str]:
    return [sys.executable, "-m", "huey.bin.huey_consumer", "bench.peers.huey_app.huey",
            *(["-w", "1000"] if mode == "io" else [])]


CELERIAC_PG = "; LISTEN/NOTIFY wake-ups, FOR UPDATE SKIP LOCKED reserves"
POSTGRES_PEERS: tuple[Peer, ...] = (
    Peer(
        name="celeriac", family="celeriac", module="bench.peers.celeriac_app", server="postgres",
        distributions=("celeriac", "psycopg"), argv=_celeriac,
        defaults=f"{CELERIAC_DEFAULTS}; async def tasks on the event loop{CELERIAC_PG}",
        results="ignore_result=True per task", io_setting="-c 1000",
    ),
    Peer(
        name="celeriac-sync", family="celeriac", module="bench.peers.celeriac_app", server="postgres",
        distributions=("celeriac", "psycopg"), argv=_celeriac,
        defaults=f"{CELERIAC_DEFAULTS}; plain def tasks on the thread pool{CELERIAC_PG}",
        results="ignore_result=True per task", io_setting="-c 1000",
    ),
    Peer(
        name="procrastinate", family="procrastinate", module="bench.peers.procrastinate_app", server="postgres",
        distributions=("procrastinate", "psycopg"), argv=_procrastinate,
        defaults="1 process, --concurrency 100 (celeriac's -c; its default is 1), LISTEN/NOTIFY + 5 s poll; "
                 "async def tasks",
        results="none returned; finished jobs kept as 'succeeded' (its default)",
        io_setting="--concurrency 1000",
        side_install=("procrastinate", "psycopg[binary,pool]"),
    ),
    Peer(
        name="pgqueuer", family="pgqueuer", module="bench.peers.pgqueuer_app", server="postgres",
        distributions=("pgqueuer", "asyncpg"), argv=_pgqueuer,
        env=lambda mode: {"PGQUEUER_SCHEMA": common.pg_schema("pgqueuer")},
        defaults="1 process, asyncpg, --batch-size 10, no concurrency cap, LISTEN/NOTIFY; async def tasks",
        results="none returned; finished jobs moved to its log table (its default)",
        io_setting="(defaults: no concurrency cap)",
        # typer 0.29 hands pgq run its --log-level as a str where PgQueuer 1.6 wants its enum.
        side_install=("pgqueuer[asyncpg]", "typer<0.29"),
    ),
    Peer(
        name="celery-threads", family="celery", module="bench.peers.celery_app", server="postgres",
        distributions=("celery", "kombu", "sqlalchemy", "psycopg"), argv=_celery("threads"),
        defaults="-P threads -c 2 (CPU count), prefetch x4, acks early; kombu's SQLAlchemy transport "
                 "(polls every 1 s when idle)",
        results="no result backend + ignore_result=True", io_setting="-c 1000",
        side_install=("sqlalchemy",),
        drain_max=2000,  # ~30 tasks/s: 20,000 would take over ten minutes
    ),
)

# --- SQLite: the embedded default, one file per queue -----------------------------------

SQLITE_PEERS: tuple[Peer, ...] = (
    Peer(
        name="celeriac", family="celeriac", module="bench.peers.celeriac_app", server="sqlite",
        distributions=("celeriac",), argv=_celeriac,
        defaults=f"{CELERIAC_DEFAULTS}; async def tasks on the event loop; WAL",
        results="ignore_result=True per task", io_setting="-c 1000",
    ),
    Peer(
        name="celeriac-sync", family="celeriac", module="bench.peers.celeriac_app", server="sqlite",
        distributions=("celeriac",), argv=_celeriac,
        defaults=f"{CELERIAC_DEFAULTS}; plain def tasks on the thread pool; WAL",
        results="ignore_result=True per task", io_setting="-c 1000",
    ),
    Peer(
        name="huey", family="huey", module="bench.peers.huey_app", server="sqlite",
        distributions=("huey",), argv=_huey,
        defaults="SqliteHuey, 1 process x 1 worker thread, polls every 0.1 s (backing off x1.15 to 10 s "
                 "when idle), WAL",
        results="SqliteHuey(results=False)", io_setting="-w 1000 (worker threads)",
        side_install=("huey",),
    ),
)

# One list for lookups; each table takes the rows of its server (select()).
PEERS = (*PEERS, *POSTGRES_PEERS, *SQLITE_PEERS)

BASELINE = "celeriac"
FAMILIES = tuple(dict.fromkeys(p.family for p in PEERS))


def select(only: str | None, server: Server = "redis") -> list[Peer]:
    """The server's peers named in ``--only`` (row names or families, of any server), in table order."""
    mine = [p for p in PEERS if p.server == server]
    if not only:
        return mine
    wanted = {w.strip() for w in only.split(",") if w.strip()}
    unknown = wanted - {p.name for p in PEERS} - set(FAMILIES)
    if unknown:
        names = ", ".join(dict.fromkeys([*FAMILIES, *(p.name for p in PEERS if p.name not in FAMILIES)]))
        raise SystemExit(f"--only: unknown queue(s) {', '.join(sorted(unknown))}; expected some of {names}")
    return [p for p in mine if p.name in wanted or p.family in wanted]


def find(name: str, server: str) -> Peer:
    """The row ``name`` of the server's table."""
    return next(p for p in PEERS if p.name == name and p.server == server)
