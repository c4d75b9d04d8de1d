"""What every peer's tasks do, written once so no queue gets a cheaper task body.

Each benchmark task is one of three bodies, in a sync and an async flavour:

``noop``   INCR the completion counter (the drain run counts completions this way for
           every queue, because "queue length is zero" means different things in each:
           prefetched, reserved or pending-in-a-stream messages are not done yet).
``io``     one HTTP GET to the slow local server, then the same INCR.
``stamp``  RPUSH ``time.time()`` taken first thing in the task (latency samples, and
           the readiness ping).

Sync bodies use redis-py's ``Redis`` and ``httpx.Client``; async bodies use
``redis.asyncio`` and ``httpx.AsyncClient``; all with no connection-pool limit (the
HTTP clients spread their connections over 256 pools: see ``http_client()``). Clients
are made lazily per process (prefork and multi-process workers fork after import) and,
for async ones, per event loop.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import redis
import redis.asyncio

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
HTTP_URL = os.environ.get("BENCH_HTTP_URL", "http://127.0.0.1:8765/")
DONE_KEY = "bench:done"
ERRORS_KEY = "bench:errors"
STAMPS_KEY = "bench:stamps"
TASK_KINDS = ("noop", "io", "stamp")
# The counter's own pool waits for a free connection instead of opening one per task:
# 1,000 I/O tasks finishing together would otherwise open 1,000 Redis connections at
# once, overflow the listen backlog, and hit redis-py's "Too many connections" or
# connect timeouts, measuring the bench's bookkeeping instead of the queue.
REDIS_POOL_SIZE = 64
# Generous socket timeouts: a worker's event loop busy with 1,000 HTTP connections can
# take seconds to get back to a connect, and a timed-out INCR would lose a completion.
REDIS_TIMEOUTS = {"socket_connect_timeout": 60.0, "socket_timeout": 60.0}


def concurrency_override() -> int | None:
    """``BENCH_CONCURRENCY``: set only for the I/O run, for peers whose CLI has no such flag."""
    value = os.environ.get("BENCH_CONCURRENCY")
    return int(value) if value else None


HTTP_SHARDS_DEFAULT = 256


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
    """``BENCH_HTTP_SHARDS`` (from ``--http-shards``): 1 is a plain client's single pool."""
    return int(os.environ.get("BENCH_HTTP_SHARDS") or HTTP_SHARDS_DEFAULT)


def http_client() -> httpx.Client:
    """The sync I/O client: no pool limit, its connections spread over many httpcore pools.

    httpcore's pool walks every connection it holds for each request (encode/httpcore#1035),
    so one pool with 1,000 connections costs seconds of CPU per 1,000 requests and the
    run would measure that instead of the queue. Every queue gets the same transport.
    """
    transport = _pools().SyncShardedTransport(http_shards())
    return httpx.Client(transport=transport, timeout=30.0)


def http_async_client() -> httpx.AsyncClient:
    """The async I/O client, like ``http_client()``."""
    return httpx.AsyncClient(transport=_pools().ShardedTransport(http_shards()), timeout=30.0)


# --- sync bodies ---------------------------------------------------------------------

_sync_lock = threading.Lock()
_sync_clients: dict[int, tuple[redis.Redis, httpx.Client]] = {}


def _sync() -> tuple[redis.Redis, httpx.Client]:
    pid = os.getpid()  # a forked child must not share its parent's sockets
    clients = _sync_clients.get(pid)
    if clients is None:
        with _sync_lock:
            clients = _sync_clients.get(pid)
            if clients is None:
                pool = redis.BlockingConnectionPool.from_url(REDIS_URL, max_connections=REDIS_POOL_SIZE,
                                                             timeout=None, **REDIS_TIMEOUTS)
                clients = (redis.Redis(connection_pool=pool), http_client())
                _sync_clients[pid] = clients
    return clients


def noop_sync(i: int) -> None:
    _sync()[0].incr(DONE_KEY)


def io_sync(i: int) -> None:
    redis_client, http = _sync()
    try:
        http.get(HTTP_URL).raise_for_status()
    except httpx.HTTPError:
        # Counted, not raised: queues differ in whether and when they retry, and a
        # retry policy is not what this run measures. The table shows the count.
        redis_client.incr(ERRORS_KEY)
    redis_client.incr(DONE_KEY)


def stamp_sync(i: int) -> None:
    started_at = time.time()  # first: the sample is enqueue-to-start
    _sync()[0].rpush(STAMPS_KEY, repr(started_at))


# --- async bodies --------------------------------------------------------------------

_async_clients: dict[tuple[int, int], tuple[Any, httpx.AsyncClient]] = {}


def _async() -> tuple[Any, httpx.AsyncClient]:
    # Keyed by process and loop: an asyncio client must not cross event loops.
    key = (os.getpid(), id(asyncio.get_running_loop()))
    clients = _async_clients.get(key)
    if clients is None:
        pool = redis.asyncio.BlockingConnectionPool.from_url(REDIS_URL, max_connections=REDIS_POOL_SIZE,
                                                             timeout=None, **REDIS_TIMEOUTS)
        clients = (redis.asyncio.Redis(connection_pool=pool), http_async_client())
        _async_clients[key] = clients
    return clients


async def noop_async(i: int) -> None:
    await _async()[0].incr(DONE_KEY)


async def io_async(i: int) -> None:
    redis_client, http = _async()
    try:
        (await http.get(HTTP_URL)).raise_for_status()
    except httpx.HTTPError:
        await redis_client.incr(ERRORS_KEY)  # counted, not raised: see io_sync
    await redis_client.incr(DONE_KEY)


async def stamp_async(i: int) -> None:
    started_at = time.time()  # first: the sample is enqueue-to-start
    await _async()[0].rpush(STAMPS_KEY, repr(started_at))
