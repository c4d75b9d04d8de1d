"""``-P prefork``: sync task bodies in child processes, which can be stopped.

The worker keeps its event loop, fetch by free slot, leases and batched completions;
only the body of a sync task moves, to one of ``-c`` children that each run one body at
a time (``async def`` tasks stay on the worker's loop). Because a child is a process:

- ``time_limit`` ends the child running past it (the task fails with
  ``TimeLimitExceeded``); ``soft_time_limit`` raises ``SoftTimeLimitExceeded`` inside
  the body (SIGALRM in the child), which the task may catch.
- ``revoke(terminate=True)`` sends SIGTERM to the child running the task (SIGKILL if it
  is still there ``TERM_GRACE_S`` later).
- A child that dies (a segfault, ``os._exit``, the OOM killer, SIGKILL) fails only the
  task it held, with ``WorkerLostError`` (or the task runs again, or is dead-lettered,
  as ``reject_on_worker_lost`` and ``acks_on_failure_or_timeout`` say).
- ``--max-tasks-per-child`` and ``--max-memory-per-child`` (KiB of resident memory)
  retire a child between two tasks, never during one.
- Every wait on a child is an await with a bound (its time limit, the worker's shutdown
  timeout, ``SPAWN_TIMEOUT_S``): a child that stops answering is ended, and cannot hang
  the worker.

A replacement child is forked by the fork server, never by the worker (see
``prefork_child.py``, which also holds what crosses between the two). With
``--autoscale MAX,MIN`` the pool keeps MIN children, forks more (up to MAX) while tasks
wait for one, and retires those idle for ``AUTOSCALE_KEEPALIVE_S`` down to MIN.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import os
import signal
import socket
import sys
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from ..backoff import Backoff
from ..exceptions import Reject, Retry, TimeLimitExceeded, WorkerLostError
from ..execution import _Raised
from . import processes
from .prefork_child import (
    REAP_GRACE_S,
    child_name,
    decode_frame,
    decode_outcome,
    encode_call,
    frame,
    header_length,
    zygote_main,
)

if TYPE_CHECKING:
    from ..app import Celery
    from ..context import Request
    from ..task import Task

logger = logging.getLogger("celeriac.worker")

SPAWN_TIMEOUT_S = 60.0  # a new child's fork and its worker_process_init receivers
EXIT_REPORT_S = 2.0  # how long a child whose socket closed may take to be reported dead
TERM_GRACE_S = 2.0  # after SIGTERM (revoke's terminate), SIGKILL if the child is still there
AUTOSCALE_KEEPALIVE_S = 30.0  # an idle child above the minimum is retired after this long
FAILED_STARTS_FATAL = 5  # children failing to start in a row, with none alive: the pool is broken


class PoolBroken(RuntimeError):
    """The pool cannot go on (its fork server died, or no child can start)."""


class _SpawnFailed(Exception):
    pass


@dataclass(eq=False)
class _Child:
    pid: int
    name: str
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    exited: asyncio.Future[int]  # its wait status, as the fork server reaped it
    tasks: int = 0
    task_id: str | None = None
    retiring: bool = False  # taking no more tasks: recycled, ended, or shutting down
    last_task: bool = False  # running its last task (--max-tasks-per-child): its successor may start
    idle_since: float = field(default_factory=time.monotonic)


class PreforkPool:
    """Sync bodies in ``concurrency`` child processes, forked from a fork server."""

    name = "prefork"

    def __init__(self, concurrency: int, *, app: Celery, max_tasks_per_child: int | None = None,
                 max_memory_per_child: int | None = None, min_children: int | None = None) -> None:
        if concurrency < 1:
            raise ValueError("the prefork pool needs at least one child")
        self.concurrency = concurrency  # the most children, and the worker's slots
        self.min_children = concurrency if min_children is None else max(0, min(min_children, concurrency))
        self.max_tasks_per_child = max_tasks_per_child or None
        self.max_memory_per_child = max_memory_per_child or None  # KiB
        self._app = app
        self._worker_name = processes.process_name()
        self._children: dict[int, _Child] = {}
        self._idle: list[_Child] = []
        self._waiters: deque[asyncio.Future[_Child]] = deque()
        self._spawn_replies: dict[int, asyncio.Future[int]] = {}
        self._exits: dict[int, asyncio.Future[int]] = {}  # pid -> its exit, from "spawned" on
        self._request_ids = itertools.count(1)
        self._numbers = itertools.count(1)
        self._spawning = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Event | None = None
        self._started: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._closing = False
        self._zygote_lost = False
        self._broken: PoolBroken | None = None
        self._spawn_tasks: set[asyncio.Task[None]] = set()
        self._spawn_pause_until = 0.0  # loop time: after a failed start, the back-off's pause
        self._starting = Backoff(logger, "cannot start a prefork child", "prefork children start again",
                                 base_s=0.1, cap_s=10.0, level=logging.ERROR)
        self._zygote_pid, self._ctrl = self._fork_server()

    # --- the fork server --------------------------------------------------------------

    def _fork_server(self) -> tuple[int, socket.socket]:
        """Fork the fork server now, while this process has (ideally) no other thread."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        _close_inherited_connections()
        gc.collect()
        gc.freeze()  # what exists now stays in pages every child shares, copy-on-write
        worker_pid = os.getpid()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            try:
                ours.close()
                zygote_main(theirs, worker_pid, self._app, self._worker_name)
            finally:
                os._exit(1)
        theirs.close()
        ours.setblocking(False)
        return pid, ours

    def _on_zygote(self) -> None:
        """The fork server wrote: a child was forked, could not be, or exited."""
        while True:
            try:
                data = self._ctrl.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                self._lose_zygote()
                return
            message = msgspec.json.decode(data)
            op = message.get("op")
            if op == "spawned":
                assert self._loop is not None
                self._exits[message["pid"]] = self._loop.create_future()
                reply = self._spawn_replies.pop(message["id"], None)
                if reply is not None and not reply.done():
                    reply.set_result(message["pid"])
                elif reply is None:  # its spawn gave up waiting: nobody will use this child
                    _kill(message["pid"], signal.SIGKILL)
            elif op == "spawn-failed":
                reply = self._spawn_replies.pop(message["id"], None)
                if reply is not None and not reply.done():
                    reply.set_exception(_SpawnFailed(f"fork() failed: {message.get('error')}"))
            elif op == "exited":
                self._on_exit(message["pid"], message["status"])

    def _lose_zygote(self) -> None:
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._ctrl.fileno())
        self._zygote_lost = True
        if not self._closing:
            logger.critical("the prefork pool's fork server (pid %d) exited; no child can be replaced",
                            self._zygote_pid)
        self._wake()

    def _on_exit(self, pid: int, status: int) -> None:
        exited = self._exits.pop(pid, None)
        if exited is not None and not exited.done():
            exited.set_result(status)
        child = self._children.pop(pid, None)
        if child is None:
            return
        if child in self._idle:
            self._idle.remove(child)
        if not child.retiring and child.task_id is None and not self._closing:
            logger.error("%s (pid %d) exited while idle: %s; starting another", child.name, pid,
                         processes.describe_exit(status))
        self._wake()

    # --- start, and keeping the children ----------------------------------------------

    async def start(self) -> asyncio.Task[None]:
        """Start the first children; the task returned ends only if the pool breaks."""
        if self._started is None:
            self._started = asyncio.ensure_future(self._start())
        await asyncio.shield(self._started)
        assert self._watcher is not None
        return self._watcher

    async def _start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self._loop.add_reader(self._ctrl.fileno(), self._on_zygote)
        await asyncio.gather(*(self._spawn() for _ in range(self.min_children)))
        self._watcher = asyncio.create_task(self._keep_children(), name="celeriac-prefork")

    async def _keep_children(self) -> None:
        """Replace children that died or were retired; with --autoscale, grow and shrink.

        One spawn per missing child, all at once: with ``--max-tasks-per-child 1`` every
        task needs a new child, and one spawn at a time would serialise them all.
        """
        assert self._changed is not None and self._loop is not None
        while not self._closing:
            if self._zygote_lost:
                raise PoolBroken(f"the prefork pool's fork server (pid {self._zygote_pid}) exited")
            if self._broken is not None:
                raise self._broken
            self._retire_idle()
            wait_s = 1.0
            missing = self._wanted() - self._live() - self._spawning
            if missing > 0:
                pause_s = self._spawn_pause_until - self._loop.time()
                if pause_s <= 0:
                    for _ in range(missing):
                        self._spawning += 1
                        spawning = asyncio.create_task(self._spawn_in_background())
                        self._spawn_tasks.add(spawning)
                        spawning.add_done_callback(self._spawn_tasks.discard)
                else:
                    wait_s = min(wait_s, pause_s)
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), wait_s)

    async def _spawn_in_background(self) -> None:
        """One replacement child; a failure pauses further spawns (back-off), and enough of
        them in a row with no child alive break the pool."""
        assert self._loop is not None
        try:
            await self._spawn_one(self._loop)
        except _SpawnFailed as exc:
            self._spawn_pause_until = self._loop.time() + self._starting.failed(exc)
            if self._starting.failures >= FAILED_STARTS_FATAL and not self._children:
                self._broken = PoolBroken(f"no prefork child could start ({exc})")
        except Exception as exc:  # a bug here must not pass silently: the worker stops
            self._broken = PoolBroken(f"starting a prefork child failed: {exc!r}")
        else:
            self._starting.succeeded()
        finally:
            self._spawning -= 1
            self._wake()

    def _live(self) -> int:
        return sum(1 for child in self._children.values() if not child.retiring and not child.last_task)

    def _wanted(self) -> int:
        busy = sum(1 for child in self._children.values() if child.task_id is not None and not child.retiring)
        waiting = sum(1 for waiter in self._waiters if not waiter.done())
        return max(self.min_children, min(self.concurrency, busy + waiting))

    def _retire_idle(self) -> None:
        if self.min_children >= self.concurrency:
            return
        now = time.monotonic()
        for child in list(self._idle):
            if self._live() <= self.min_children:
                return
            if now - child.idle_since >= AUTOSCALE_KEEPALIVE_S:
                logger.info("%s (pid %d) idle for %.0fs: retired (--autoscale)", child.name, child.pid,
                            now - child.idle_since)
                self._retire(child)

    async def _spawn(self) -> None:
        assert self._loop is not None
        if self._zygote_lost:
            raise _SpawnFailed("the fork server is gone")
        self._spawning += 1
        try:
            await self._spawn_one(self._loop)
        finally:
            self._spawning -= 1
            self._wake()

    async def _spawn_one(self, loop: asyncio.AbstractEventLoop) -> None:
        name = child_name(self._worker_name, next(self._numbers))
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        request_id = next(self._request_ids)
        reply: asyncio.Future[int] = loop.create_future()
        self._spawn_replies[request_id] = reply
        try:
            try:
                await _send_with_fd(self._ctrl, msgspec.json.encode({"op": "spawn", "id": request_id, "name": name}),
                                    theirs.fileno())
            finally:
                theirs.close()
            pid = await asyncio.wait_for(reply, SPAWN_TIMEOUT_S)
        except BaseException as exc:
            self._spawn_replies.pop(request_id, None)
            ours.close()
            if isinstance(exc, (OSError, TimeoutError)):
                raise _SpawnFailed(f"the fork server did not fork {name}: {exc!r}") from exc
            raise
        exited = self._exits.get(pid) or loop.create_future()
        try:
            reader, writer = await asyncio.open_unix_connection(sock=ours)
        except BaseException:
            ours.close()
            _kill(pid, signal.SIGKILL)
            raise
        child = _Child(pid, name, reader, writer, exited)
        if not exited.done():
            self._children[pid] = child
        try:
            hello = await asyncio.wait_for(_read_frame(reader), SPAWN_TIMEOUT_S)
            if hello.get("op") != "hello":
                raise _SpawnFailed(f"{name} said {hello.get('op')!r} instead of hello")
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, _SpawnFailed) as exc:
            child.retiring = True
            _kill(pid, signal.SIGKILL)
            writer.close()
            status = await _exit_status(child)
            raise _SpawnFailed(f"{name} (pid {pid}) ended before it was ready: "
                               f"{processes.describe_exit(status) if status is not None else exc!r}") from None
        except BaseException:
            child.retiring = True
            _kill(pid, signal.SIGKILL)
            writer.close()
            raise
        logger.debug("%s (pid %d) started", name, pid)
        self._release(child)

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()

    # --- handing children to tasks ----------------------------------------------------

    def _release(self, child: _Child) -> None:
        """``child`` is free: to the first task waiting for one, else to the idle ones."""
        if child.retiring or child.exited.done() or self._closing:
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(child)
                return
        child.idle_since = time.monotonic()
        self._idle.append(child)

    async def _acquire(self) -> _Child:
        while self._idle:
            child = self._idle.pop()  # the most recently used: with --autoscale the others go idle
            if not child.retiring and not child.exited.done():
                return child
        if self._closing:
            raise PoolBroken("the prefork pool is shutting down")
        assert self._loop is not None
        waiter: asyncio.Future[_Child] = self._loop.create_future()
        self._waiters.append(waiter)
        self._wake()  # with --autoscale, a waiting task is the reason to fork another child
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release(waiter.result())
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    # --- the Pool contract ------------------------------------------------------------

    async def run(self, task: Task[Any, Any], request: Request,
                  time_limit: float | None, soft_time_limit: float | None) -> Any:
        if self._watcher is None:
            await self.start()
        call = encode_call(task.name, request, soft_time_limit, rss=self.max_memory_per_child is not None)
        child = await self._acquire()
        child.task_id = request.id or ""
        child.tasks += 1
        if self.max_tasks_per_child and child.tasks >= self.max_tasks_per_child:
            child.last_task = True  # fork its successor now, while this task runs
            self._wake()
        reply: dict[str, Any] | None = None
        try:
            async with asyncio.timeout(time_limit or None):
                child.writer.write(call)
                await child.writer.drain()
                reply = await _read_frame(child.reader)
        except TimeoutError:
            self._end(child, signal.SIGKILL)
            logger.error("Task %s[%s] ran past its time_limit (%gs): %s (pid %d) ended", task.name, request.id,
                         time_limit, child.name, child.pid)
            raise TimeLimitExceeded(
                f"task {task.name}[{request.id}] ran past time_limit={time_limit:g}s; its child process "
                f"(pid {child.pid}) was ended") from None
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            child.retiring = True
            status = await _exit_status(child)
            return self._lost(task, request, child, status)
        except BaseException:  # cancelled (revoke terminate, lost lease, shutdown): the body must stop too
            if reply is None and not child.retiring:  # (revoke's SIGTERM keeps its grace period)
                self._end(child, signal.SIGKILL)
            raise
        finally:
            child.task_id = None
            if reply is not None:
                self._after_task(child, reply)
        return decode_outcome(reply)

    def cancel(self, task_id: str, hard: bool, signum: int | None = None) -> bool:
        """End the child running ``task_id`` with ``signum`` (default SIGTERM; SIGKILL follows
        after ``TERM_GRACE_S`` if it is still there)."""
        if signum is None:
            signum = signal.SIGTERM
        for child in self._children.values():
            if child.task_id == task_id and not child.exited.done():
                logger.info("%s (pid %d) running %s: sending %s", child.name, child.pid, task_id,
                            processes.signal_name(signum))
                self._end(child, signum)
                return True
        return True  # no child runs it: nothing goes on running here

    async def shutdown(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for running bodies, end the rest and every child. Never
        leaves anything running: returns False."""
        if timeout_s > 0:
            deadline = time.monotonic() + timeout_s
            while any(c.task_id is not None for c in self._children.values()) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        self._closing = True
        if self._watcher is not None:
            self._watcher.cancel()
        for spawning in list(self._spawn_tasks):
            spawning.cancel()
        for waiter in self._waiters:
            waiter.cancel()
        for child in list(self._children.values()):
            if child.task_id is not None:
                self._end(child, signal.SIGKILL)
            else:
                self._retire(child)
        if self._loop is not None and not self._zygote_lost:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._ctrl.fileno())
        self._ctrl.close()  # the fork server reaps what is left, then exits
        await self._reap_zygote()
        return False

    async def _reap_zygote(self) -> None:
        deadline = time.monotonic() + REAP_GRACE_S + 1.0
        while time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(self._zygote_pid, os.WNOHANG)
            except ChildProcessError:
                return
            if pid:
                return
            await asyncio.sleep(0.02)
        _kill(self._zygote_pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self._zygote_pid, 0)

    # --- endings ----------------------------------------------------------------------

    def _after_task(self, child: _Child, reply: dict[str, Any]) -> None:
        """Between two tasks: recycle the child if it ran its share or grew too big."""
        if self.max_tasks_per_child and child.tasks >= self.max_tasks_per_child:
            logger.info("%s (pid %d) ran %d tasks: recycled (--max-tasks-per-child)", child.name, child.pid,
                        child.tasks)
            self._retire(child)
        elif self.max_memory_per_child and int(reply.get("rss") or 0) > self.max_memory_per_child:
            logger.info("%s (pid %d) holds %d KiB of resident memory: recycled (--max-memory-per-child=%d)",
                        child.name, child.pid, reply.get("rss"), self.max_memory_per_child)
            self._retire(child)
        else:
            self._release(child)

    def _retire(self, child: _Child) -> None:
        """Take no more tasks on ``child`` and tell it to exit (it is idle)."""
        child.retiring = True
        if child in self._idle:
            self._idle.remove(child)
        with contextlib.suppress(Exception):
            child.writer.write(frame({"op": "exit"}))
            child.writer.close()
        self._wake()

    def _end(self, child: _Child, signum: int) -> None:
        """Stop ``child`` now, in the middle of its task."""
        child.retiring = True
        if child in self._idle:
            self._idle.remove(child)
        if not child.exited.done():
            _kill(child.pid, signum)
            if signum != signal.SIGKILL and self._loop is not None:
                self._loop.call_later(TERM_GRACE_S, _kill_unless_exited, child)
        with contextlib.suppress(Exception):
            child.writer.close()
        self._wake()

    def _lost(self, task: Task[Any, Any], request: Request, child: _Child, status: int | None) -> _Raised:
        """The child died during the task: what that means for the task, as Celery decides it."""
        how = processes.describe_exit(status)
        lost = WorkerLostError(f"Worker exited prematurely: {how} Job: {request.id}.")
        text = "".join(traceback.format_exception_only(lost))
        settings = self._app.settings
        acks_late = _option(task, "acks_late", settings.task_acks_late)
        requeue = _option(task, "reject_on_worker_lost", settings.task_reject_on_worker_lost)
        acks_on_failure = _option(task, "acks_on_failure_or_timeout", settings.task_acks_on_failure_or_timeout)
        if acks_late and requeue and (task.max_retries is None or request.retries < task.max_retries):
            logger.error("%s (pid %d) running %s[%s] exited: %s; the task runs again (reject_on_worker_lost)",
                         child.name, child.pid, task.name, request.id, how)
            return _Raised(Retry(f"{lost}; it runs again (reject_on_worker_lost)", exc=lost, when=0), text)
        logger.error("%s (pid %d) running %s[%s] exited: %s; the task fails, another child takes its place",
                     child.name, child.pid, task.name, request.id, how)
        if acks_late and not acks_on_failure:
            return _Raised(Reject(str(lost), requeue=False), text)
        return _Raised(lost, text)


def _option(task: Any, name: str, default: Any) -> Any:
    value = getattr(task, name, None)
    return default if value is None else value


async def _read_frame(reader: asyncio.StreamReader) -> dict[str, Any]:
    header = await reader.readexactly(4)
    return decode_frame(await reader.readexactly(header_length(header)))


async def _send_with_fd(sock: socket.socket, data: bytes, fd: int) -> None:
    for _ in range(200):
        try:
            socket.send_fds(sock, [data], [fd])
            return
        except (BlockingIOError, InterruptedError):
            await asyncio.sleep(0.01)  # the fork server is reading; its buffer holds hundreds
    raise TimeoutError("the fork server does not read its requests")


async def _exit_status(child: _Child) -> int | None:
    """The child's wait status once the fork server reaped it; SIGKILL if it lingers."""
    for _ in range(2):
        try:
            return await asyncio.wait_for(asyncio.shield(child.exited), EXIT_REPORT_S)
        except TimeoutError:
            _kill(child.pid, signal.SIGKILL)  # its socket closed but it runs on: end it
    return None


def _kill(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signum)


def _kill_unless_exited(child: _Child) -> None:
    if not child.exited.done():
        _kill(child.pid, signal.SIGKILL)


def _close_inherited_connections() -> None:
    """Close this process's Django database connections before forking: a child must open
    its own, never share a socket with the worker (Django reconnects on next use)."""
    db = sys.modules.get("django.db")
    if db is None:
        return
    with contextlib.suppress(Exception):
        db.connections.close_all()
