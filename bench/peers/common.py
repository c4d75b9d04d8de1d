"""What every peer's tasks do, written once so no queue gets a cheaper task body.

Each benchmark task is one of four bodies, in a sync and an async flavour:

``noop``   count one completion (the drain run counts completions this way for every
           queue, because "queue length is zero" means different things in each:
           prefetched, reserved or pending-in-a-stream messages are not done yet).
``io``     one HTTP GET to the slow local server, then count one completion.
``stamp``  RPUSH ``time.time()`` taken first thing in the task (latency samples, and
           the readiness ping).
``cpu``    ``CPU_TASK_S`` (5 ms) of pure-Python work in the task's own thread, then
           count one completion (the CPU-bound drain: one GIL per process, so only
           processes help).

A completion is counted in the worker process and added to the Redis counter by a
thread of that process every ``TALLY_FLUSH_S`` (one ``INCRBY`` for all completions
since the last), the same code for every queue. It used to be one ``INCR`` per task,
which cost 80-130 µs of the worker's CPU per task at ``-c 100``: more than some queues'
whole per-task cost, so the drain measured redis-py as much as the queue.
``BENCH_COUNT_EACH=1`` goes back to one ``INCR`` per task, for runs whose worker processes
exit after a task (``bench.soak``: a thread's last flush would die with them).

Sync bodies use redis-py's ``Redis`` and curl_cffi's ``Session``; async bodies use
``redis.asyncio`` and curl_cffi's ``AsyncSession``; all with no connection-pool limit.
curl_cffi (libcurl) is the comparison's HTTP client because it costs the least CPU per
request: 1,000 concurrent GETs from one process take ~0.3 s with it and ~0.7 s with httpx
even spread over 256 pools (~20 s in one httpx pool), and a client that costs more
measures the client instead of the queue. ``--http-client httpx`` runs httpx, as a
diagnostic. Clients are made lazily per process (prefork and multi-process workers fork
after import), per thread for curl_cffi's sync session, and per event loop for async ones.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import redis

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
HTTP_URL = os.environ.get("BENCH_HTTP_URL", "http://127.0.0.1:8765/")
# Which table a worker or driver is in (the harness sets it): the queues' own server is
# Redis, PostgreSQL or an SQLite file; completions are counted in Redis whatever it is.
SERVER = os.environ.get("BENCH_SERVER", "redis")
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
SQLITE_DIR = Path(os.environ.get("BENCH_SQLITE_DIR", "/tmp/celeriac-bench-sqlite"))
DONE_KEY = "bench:done"
ERRORS_KEY = "bench:errors"
STAMPS_KEY = "bench:stamps"
TASK_KINDS = ("noop", "io", "stamp", "cpu")
CPU_TASK_S = 0.005  # the cpu metric: CPU time each task spends in its own thread before counting
# How often a worker process adds its completions to the Redis counter: short next to any
# drain (seconds), so the clock stops at most this late.
TALLY_FLUSH_S = 0.005
COUNT_EACH = os.environ.get("BENCH_COUNT_EACH") == "1"
# The pool for stamps and error counts waits for a free connection instead of opening one
# per task: 1,000 I/O tasks failing together would otherwise open 1,000 Redis connections
# at once, overflow the listen backlog, and hit redis-py's "Too many connections" or
# connect timeouts, measuring the bench's bookkeeping instead of the queue.
REDIS_POOL_SIZE = 64
# Generous socket timeouts: a worker's event loop busy with 1,000 HTTP connections can
# take seconds to get back to a connect, and a timed-out write would lose a count.
REDIS_TIMEOUTS = {"socket_connect_timeout": 60.0, "socket_timeout": 60.0}


def pg_schema(family: str) -> str:
    """The PostgreSQL schema of one queue's tables: each queue in its own, in one database."""
    return os.environ.get("BENCH_PG_SCHEMA_PREFIX", "bench_") + family.replace("-", "_")


def sqlite_path(family: str) -> Path:
    """The SQLite file of one queue (the harness deletes it between runs)."""
    return SQLITE_DIR / f"{family}.db"


def broker_url(family: str) -> str:
    """The URL of this table's server for a queue that takes one (celeriac, Celery, Huey)."""
    if SERVER == "postgres":
        return f"{PG_URL}?schema={pg_schema(family)}"
    if SERVER == "sqlite":
        return f"sqlite:///{sqlite_path(family)}"
    return REDIS_URL


def pg_search_path(family: str) -> str:
    """libpq's ``options`` that put this queue's schema first (for queues with no schema setting)."""
    return f"-c search_path={pg_schema(family)}"


def concurrency_override() -> int | None:
    """``BENCH_CONCURRENCY``: set only for the I/O run, for peers whose CLI has no such flag."""
    value = os.environ.get("BENCH_CONCURRENCY")
    return int(value) if value else None


HTTP_CLIENTS = ("curl_cffi", "httpx")  # the first is the comparison's; httpx is a diagnostic
HTTP_SHARDS_DEFAULT = 256  # httpx only
CURL_MAX_CLIENTS = 4096  # above any run's concurrency: curl_cffi's handle count is never a limit


def _pools() -> ModuleType:
    """celeriac/demo/pools.py, loaded by path: another queue's worker must not import celeriac.

    The module imports only httpx. Importing it as ``celeriac.demo.pools`` would run
    celeriac's package ``__init__`` in every peer's worker (start-up time and RSS).
    """
    package = importlib.util.find_spec("celeriac")  # finds the package without importing it
    assert package is not None and package.submodule_search_locations, "celeriac is not installed"
    path = Path(next(iter(package.submodule_search_locations))) / "demo" / "pools.py"
    module = sys.modules.get("bench_http_pools")
    if module is None:
        spec = importlib.util.spec_from_file_location("bench_http_pools", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["bench_http_pools"] = module
        spec.loader.exec_module(module)
    return module


def http_shards() -> int:
    """``BENCH_HTTP_SHARDS`` (from ``--http-shards``): 1 is a plain httpx client's single pool."""
    return int(os.environ.get("BENCH_HTTP_SHARDS") or HTTP_SHARDS_DEFAULT)


def http_client_name() -> str:
    """``BENCH_HTTP_CLIENT`` (from ``--http-client``): ``curl_cffi`` unless told otherwise."""
    name = os.environ.get("BENCH_HTTP_CLIENT") or HTTP_CLIENTS[0]
    if name not in HTTP_CLIENTS:
        raise SystemExit(f"BENCH_HTTP_CLIENT={name!r}: expected one of {', '.join(HTTP_CLIENTS)}")
    return name


# What a failed GET raises, set when the first client is made: the HTTP clients are
# imported by the I/O run only (importing them up front would put ~0.1 s in every worker's
# start-up, on the drain's clock, and their modules in its RSS).
_http_errors: tuple[type[Exception], ...] = ()


def _httpx() -> ModuleType:
    global _http_errors
    import httpx

    _http_errors = (httpx.HTTPError,)
    return httpx


def _curl_errors() -> None:
    global _http_errors
    from curl_cffi.requests.exceptions import RequestException

    _http_errors = (RequestException,)


def http_client() -> Any:
    """A sync I/O client for this thread's process (httpx) or this thread (curl_cffi).

    curl_cffi's ``Session`` is one curl handle and must not be shared by threads, so each
    thread has its own: as many connections as threads, with no pool limit. httpx's
    client is thread-safe; it spreads its connections over many httpcore pools, because
    one pool walks every connection it holds for each request (encode/httpcore#1035),
    which costs seconds of CPU per 1,000 requests at this concurrency.
    """
    if http_client_name() == "httpx":
        return _httpx().Client(transport=_pools().SyncShardedTransport(http_shards()), timeout=30.0)
    from curl_cffi.requests import Session

    _curl_errors()
    return Session(timeout=30.0)


def http_async_client() -> Any:
    """The async I/O client for the running loop, with no pool limit.

    curl_cffi's ``AsyncSession`` needs a number of curl handles (``max_clients``); it is
    set above any run's concurrency, so no request ever waits for one.
    """
    if http_client_name() == "httpx":
        return _httpx().AsyncClient(transport=_pools().ShardedTransport(http_shards()), timeout=30.0)
    from curl_cffi.requests import AsyncSession

    _curl_errors()
    return AsyncSession(max_clients=CURL_MAX_CLIENTS, timeout=30.0)


# --- sync bodies ---------------------------------------------------------------------

_sync_lock = threading.Lock()
_sync_redis: dict[int, redis.Redis] = {}
_sync_http: dict[int, Any] = {}  # httpx: one per process
_thread_http = threading.local()  # curl_cffi: one per thread (and process)

T = TypeVar("T")


def _per_process(made: dict[int, T], make: Callable[[], T]) -> T:
    """This process's one ``make()``, shared by its threads: a forked child must not share
    its parent's sockets. The lock only for the first call."""
    pid = os.getpid()
    found = made.get(pid)
    if found is None:
        with _sync_lock:
            found = made.get(pid)
            if found is None:
                found = made[pid] = make()
    return found


def _sync() -> redis.Redis:
    return _per_process(_sync_redis, _new_sync_redis)


def _new_sync_redis() -> redis.Redis:
    import redis  # not at import: see _Tally

    pool = redis.BlockingConnectionPool.from_url(REDIS_URL, max_connections=REDIS_POOL_SIZE,
                                                 timeout=None, **REDIS_TIMEOUTS)
    return redis.Redis(connection_pool=pool)


def _sync_http_client() -> Any:
    if http_client_name() == "httpx":
        return _per_process(_sync_http, http_client)
    pid = os.getpid()
    if getattr(_thread_http, "pid", None) != pid:
        _thread_http.client, _thread_http.pid = http_client(), pid
    return _thread_http.client


class _Tally:
    """Completions counted in this process; a daemon thread adds them to ``DONE_KEY``.

    A lock rather than a bare ``+=``: sync peers count from many threads at once. The
    thread speaks Redis's protocol on a socket of its own rather than through redis-py:
    importing redis-py takes ~0.1 s, which would be on the drain's clock of every queue
    that does not use Redis itself (the PostgreSQL and SQLite tables).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending = 0
        url = urlsplit(REDIS_URL)
        self._socket = socket.create_connection((url.hostname or "127.0.0.1", url.port or 6379),
                                                timeout=REDIS_TIMEOUTS["socket_timeout"])
        self._replies = self._socket.makefile("rb")
        if url.password:
            self._call(b"AUTH", *([url.username.encode()] if url.username else []), url.password.encode())
        self._call(b"SELECT", (url.path.strip("/") or "0").encode())
        threading.Thread(target=self._flush_forever, name="bench-tally", daemon=True).start()

    def add(self) -> None:
        with self._lock:
            self._pending += 1

    def _call(self, *words: bytes) -> None:
        self._socket.sendall(b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words))
        reply = self._replies.readline()
        if not reply.startswith((b"+", b":")):
            raise RuntimeError(f"Redis refused {words[0].decode()}: {reply!r}")

    def _flush_forever(self) -> None:
        while True:
            time.sleep(TALLY_FLUSH_S)
            with self._lock:
                pending, self._pending = self._pending, 0
            if pending:
                self._call(b"INCRBY", DONE_KEY.encode(), b"%d" % pending)


_tallies: dict[int, _Tally] = {}


def count_done() -> None:
    """One task completed. Per process: a forked child starts its own thread."""
    if COUNT_EACH:
        _sync().incr(DONE_KEY)
        return
    _per_process(_tallies, _Tally).add()


def noop_sync(i: int) -> None:
    count_done()


def burn_cpu(seconds: float = CPU_TASK_S) -> None:
    """Pure-Python work for ``seconds`` of this thread's CPU time: it holds the GIL throughout,
    as image resizing in Python or a C extension that never releases it would."""
    until = time.thread_time() + seconds
    while time.thread_time() < until:
        pass


def cpu_sync(i: int) -> None:
    burn_cpu()
    count_done()


def io_sync(i: int) -> None:
    redis_client = _sync()
    try:
        _sync_http_client().get(HTTP_URL).raise_for_status()
    except _http_errors:
        # Counted, not raised: queues differ in whether and when they retry, and a
        # retry policy is not what this run measures. The table shows the count.
        redis_client.incr(ERRORS_KEY)
    count_done()


def stamp_sync(i: int) -> None:
    started_at = time.time()  # first: the sample is enqueue-to-start
    _sync().rpush(STAMPS_KEY, repr(started_at))


# --- async bodies --------------------------------------------------------------------

_async_clients: dict[tuple[int, int], tuple[Any, Any]] = {}


def _async() -> tuple[Any, Any]:
    # Keyed by process and loop: an asyncio client must not cross event loops.
    key = (os.getpid(), id(asyncio.get_running_loop()))
    clients = _async_clients.get(key)
    if clients is None:
        import redis.asyncio  # not at import: see _Tally
        pool = redis.asyncio.BlockingConnectionPool.from_url(REDIS_URL, max_connections=REDIS_POOL_SIZE,
                                                             timeout=None, **REDIS_TIMEOUTS)
        clients = (redis.asyncio.Redis(connection_pool=pool), http_async_client())
        _async_clients[key] = clients
    return clients


async def noop_async(i: int) -> None:
    count_done()


async def cpu_async(i: int) -> None:
    burn_cpu()  # blocks the event loop meanwhile: what CPU work in an async def task does
    count_done()


async def io_async(i: int) -> None:
    redis_client, http = _async()
    try:
        (await http.get(HTTP_URL)).raise_for_status()
    except _http_errors:
        await redis_client.incr(ERRORS_KEY)  # counted, not raised: see io_sync
    count_done()


async def stamp_async(i: int) -> None:
    started_at = time.time()  # first: the sample is enqueue-to-start
    await _async()[0].rpush(STAMPS_KEY, repr(started_at))
