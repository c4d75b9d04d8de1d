"""Processes: workers started with their real CLIs, driver runs, the slow HTTP server.

The queue under test (``use``) decides what ``flush`` empties besides the bench's Redis
database: on PostgreSQL every table of that queue's own schema (``TRUNCATE``; a schema
per queue, in one database), on SQLite that queue's own file.

Every worker starts in a session of its own, so stopping it signals its whole process
group (prefork children, Dramatiq's and taskiq's worker processes) and nothing survives
a run. ``Harness.close()`` (also run at exit) stops whatever is still alive.
"""

from __future__ import annotations

import atexit
import compileall
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import redis

from .peers import Peer, RunMode, common

REPO_ROOT = Path(__file__).resolve().parent.parent
STOP_GRACE_S = 15.0


class BenchFailure(Exception):
    """A measurement could not be taken; its message goes into the table."""


@dataclass
class Worker:
    peer: Peer
    mode: RunMode
    argv: list[str]
    process: subprocess.Popen[bytes]
    log_path: Path
    started_at: float  # perf_counter just before the process was spawned

    def is_alive(self) -> bool:
        return self.process.poll() is None

    def tree_rss_bytes(self) -> int:
        """RSS of the worker and all its descendants (prefork children, worker processes)."""
        try:
            root = psutil.Process(self.process.pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0
        total = 0
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += process.memory_info().rss
        return total

    def log_tail(self, lines: int = 3) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(line.strip() for line in text[-lines:])


@dataclass
class Harness:
    redis_url: str
    log_dir: Path
    http_url: str = ""
    workers: list[Worker] = field(default_factory=list)
    _server: subprocess.Popen[bytes] | None = None
    pg_url: str = common.PG_URL
    sqlite_dir: Path = common.SQLITE_DIR
    peer: Peer | None = None  # the queue under test: flush() empties its storage too

    def __post_init__(self) -> None:
        self.store = redis.Redis.from_url(self.redis_url)
        db = self.store.connection_pool.connection_kwargs.get("db", 0)
        if int(db) == 0:
            # db 0 is shared with everything else on this server; the harness flushes its db.
            raise SystemExit("--redis-url must name a dedicated database (e.g. /14), not db 0: the bench flushes it")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        atexit.register(self.close)

    # --- Redis ---------------------------------------------------------------------

    def flush(self) -> None:
        """Empty the bench's own database (never another one) between runs, and the queue's."""
        self.store.flushdb()
        if self.peer is not None and self.peer.server == "postgres":
            self._truncate_schema(common.pg_schema(self.peer.family))
        elif self.peer is not None and self.peer.server == "sqlite":
            path = self.sqlite_dir / common.sqlite_path(self.peer.family).name
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(FileNotFoundError):
                    Path(f"{path}{suffix}").unlink()

    def use(self, peer: Peer) -> None:
        """Make ``peer`` the queue under test: its schema or directory exists, and is empty."""
        import psycopg

        self.peer = peer
        try:
            if peer.server == "postgres":
                with self._pg() as conn:
                    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {common.pg_schema(peer.family)}")
            elif peer.server == "sqlite":
                self.sqlite_dir.mkdir(parents=True, exist_ok=True)
            self.flush()
        except psycopg.Error as exc:
            raise BenchFailure(f"failed: PostgreSQL at {self.pg_url}: {str(exc).strip()[:160]}") from exc

    # Tables a queue reads its schema's version from: emptying them would make it install again.
    KEEP_TABLES = frozenset({"migrations"})

    def _pg(self) -> Any:
        import psycopg

        return psycopg.connect(self.pg_url, autocommit=True, connect_timeout=10)

    def _truncate_schema(self, schema: str) -> None:
        with self._pg() as conn:
            tables = [row[0] for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s", [schema]).fetchall()
                      if row[0] not in self.KEEP_TABLES]
            if tables:
                conn.execute("TRUNCATE " + ", ".join(f"{schema}.{t}" for t in tables) + " RESTART IDENTITY CASCADE")

    def pg_version(self) -> str:
        with self._pg() as conn:
            return str(conn.execute("SHOW server_version").fetchone()[0])

    def done_count(self) -> int:
        return int(self.store.get("bench:done") or 0)

    # --- environment and set-up ----------------------------------------------------

    def env_for(self, peer: Peer, mode: RunMode) -> dict[str, str]:
        paths = [str(REPO_ROOT)]
        if peer.side_dir is not None:
            paths.insert(0, str(peer.side_dir))  # arq's redis-py must win over the venv's
        env = dict(os.environ)
        env.update(peer.env(mode))
        env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env["BENCH_REDIS_URL"] = self.redis_url
        env["BENCH_SERVER"] = peer.server
        env["BENCH_PG_URL"] = self.pg_url
        env["BENCH_SQLITE_DIR"] = str(self.sqlite_dir)
        env["BENCH_HTTP_URL"] = self.http_url
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def install_side(self, peer: Peer) -> None:
        """pip-install a peer whose pins clash with the venv into its own directory."""
        side_dir = peer.side_dir
        if side_dir is None:
            return
        marker = side_dir / ".installed"
        wanted = " ".join(peer.side_install)
        if marker.exists() and marker.read_text() == wanted:
            return
        result = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--upgrade", "--target", str(side_dir),
             *peer.side_install],
            capture_output=True, text=True, timeout=600,
        )
        if result.returncode != 0:
            errors = [ln for ln in result.stderr.splitlines() if ln.startswith("ERROR")] or ["pip failed"]
            raise BenchFailure(f"failed: pip install {wanted}: {errors[-1][:160]}")
        # pip --target leaves no .pyc files here: compile them now, or each worker would at
        # start-up, on the drain's clock (see _compile_checkout in __main__.py).
        compileall.compile_dir(side_dir, quiet=1)
        marker.write_text(wanted)

    def driver(self, peer: Peer, *args: str, timeout_s: float = 300.0) -> dict[str, Any]:
        """Run ``python -m bench.driver`` for one operation; its last stdout line is JSON."""
        try:
            result = subprocess.run(
                [sys.executable, "-m", "bench.driver", peer.name, *args], cwd=REPO_ROOT,
                env=self.env_for(peer, "default"), capture_output=True, text=True, timeout=timeout_s,
            )
        except subprocess.TimeoutExpired as exc:
            raise BenchFailure(f"failed: driver {args[0]} timed out after {timeout_s:.0f}s") from exc
        if result.returncode != 0:
            lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
            raise BenchFailure(f"failed: {(lines[-1] if lines else f'exit {result.returncode}')[:200]}")
        reply: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
        return reply

    # --- workers -------------------------------------------------------------------

    def start_worker(self, peer: Peer, mode: RunMode, label: str) -> Worker:
        argv = peer.argv(mode)
        prefix = "" if peer.server == "redis" else f"{peer.server}-"
        log_path = self.log_dir / f"{prefix}{peer.name}-{label}.log"
        log = log_path.open("wb")
        started_at = time.perf_counter()
        process = subprocess.Popen(argv, cwd=REPO_ROOT, env=self.env_for(peer, mode), stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()  # the child holds its own copy
        worker = Worker(peer, mode, argv, process, log_path, started_at)
        self.workers.append(worker)
        return worker

    def stop_worker(self, worker: Worker) -> None:
        """SIGTERM the worker's process group, then SIGKILL whatever is left of it."""
        descendants = _descendants(worker.process.pid)
        _signal_group(worker.process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.process.wait(timeout=STOP_GRACE_S)
        _signal_group(worker.process.pid, signal.SIGKILL)
        worker.process.wait()
        for process in descendants:  # a child that left the group (none should) dies too
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        if worker in self.workers:
            self.workers.remove(worker)

    # --- the slow HTTP server ------------------------------------------------------

    def start_http_server(self) -> None:
        port = _free_port()
        self.http_url = f"http://127.0.0.1:{port}/"
        log = (self.log_dir / "slow-server.log").open("wb")
        self._server = subprocess.Popen([sys.executable, "-m", "bench.slow_server", str(port)], cwd=REPO_ROOT,
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.http_url, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)  # not listening yet; uvicorn has no ready signal to wait on
        raise BenchFailure("failed: the slow HTTP server did not answer within 30s")

    def close(self) -> None:
        for worker in list(self.workers):
            self.stop_worker(worker)
        if self._server is not None and self._server.poll() is None:
            _signal_group(self._server.pid, signal.SIGTERM)
            try:
                self._server.wait(timeout=5)
            except subprocess.TimeoutExpired:
                _signal_group(self._server.pid, signal.SIGKILL)
                self._server.wait()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)  # pid is the group id: the worker was started in a new session


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        children: list[psutil.Process] = psutil.Process(pid).children(recursive=True)
        return children
    except psutil.NoSuchProcess:
        return []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
