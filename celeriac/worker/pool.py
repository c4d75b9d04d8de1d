"""Where sync task bodies run: the one seam between running a task and the threads it runs on.

``execution.execute()`` hands a sync task to a :class:`Pool` as data (the task, its
request, its time limits); the pool calls :func:`~celeriac.execution.run_body` wherever
it runs bodies and hands back what that returned. ``async def`` tasks never come here:
they run on the worker's event loop. What a thread cannot do (be stopped) is said here,
in :class:`ThreadPool`, and nowhere else; ``-P prefork`` (``prefork.py``) runs bodies in
child processes, which can be.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol, SupportsInt

from ..config import DEFAULTS
from ..exceptions import ConfigurationError, TimeLimitExceeded
from ..execution import run_body

if TYPE_CHECKING:
    from ..app import Celery
    from ..context import Request
    from ..task import Task

logger = logging.getLogger("celeriac.worker")


class Pool(Protocol):
    """Runs the bodies of sync tasks, at most ``concurrency`` at once."""

    name: str  # as in ``-P``: "threads", "solo", "prefork"; "inline" for eager apply()
    concurrency: int

    async def run(self, task: Task[Any, Any], request: Request,
                  time_limit: float | None, soft_time_limit: float | None) -> Any:
        """Run ``task``'s body for ``request`` and return what ``run_body`` returned: the
        body's value, or what it raised carried as a value. Past ``time_limit`` it raises
        ``TimeLimitExceeded``."""
        ...

    def cancel(self, task_id: str, hard: bool, signum: int | None = None) -> bool:
        """Stop the body running for ``task_id``. True if none goes on running here (or this
        pool runs none by that id), so the caller may stop waiting for it; False if it runs
        to its end. ``hard``: asked by ``revoke(terminate=True)``; if it cannot be done, the
        pool logs why, once per task. ``signum``: the signal ``revoke(signal=...)`` named, for
        a pool that ends a process (prefork); None: its default (SIGTERM)."""
        ...

    async def shutdown(self, timeout_s: float) -> bool:
        """Take no more bodies and wait up to ``timeout_s`` for those running. True if some
        still run, abandoned: the process should then exit without waiting for them."""
        ...


class ThreadPool:
    """Bodies on a thread pool sized to the concurrency.

    A thread cannot be stopped from outside, and this is everything that follows from it:

    - ``soft_time_limit`` has no effect: nothing can be raised into a running thread.
    - Past ``time_limit`` the task fails with ``TimeLimitExceeded``, and its thread runs on,
      abandoned, until the body returns (its late writes are fenced off).
    - ``cancel()`` refuses: the body runs to its end and its own outcome is recorded.
      The worker may still stop waiting for it (a lost lease, shutdown); it runs on.
    - ``shutdown()`` reports the threads still running, so the worker exits without them.
    """

    name = "threads"

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="celeriac-task")
        # Every body handed to a thread and not ended, awaited or abandoned, with its task id;
        # its thread ends it, so the lock guards it.
        self._bodies: dict[Future[Any], str | None] = {}
        self._lock = threading.Lock()
        self._refused: set[str] = set()  # ids already told they cannot be stopped

    async def run(self, task: Task[Any, Any], request: Request,
                  time_limit: float | None, soft_time_limit: float | None) -> Any:
        body = self._executor.submit(contextvars.copy_context().run, run_body, task, request)
        with self._lock:
            self._bodies[body] = request.id
        body.add_done_callback(self._ended)
        future = asyncio.wrap_future(body)
        try:
            if time_limit:
                try:
                    return await asyncio.wait_for(asyncio.shield(future), time_limit)
                except TimeoutError:
                    raise TimeLimitExceeded(
                        f"task {task.name}[{request.id}] ran past time_limit={time_limit}s; its thread "
                        "cannot be stopped and is abandoned (its late writes are fenced off). Make it an "
                        "async def task if it must be stopped."
                    ) from None
            return await future
        finally:
            if request.id is not None:
                self._refused.discard(request.id)

    def cancel(self, task_id: str, hard: bool, signum: int | None = None) -> bool:
        with self._lock:
            on_a_thread = task_id in self._bodies.values()
        if not on_a_thread:
            return True
        if hard and task_id not in self._refused:
            self._refused.add(task_id)
            logger.warning("revoke(terminate=True) of %s: a sync task on a thread cannot be "
                           "stopped; it runs to the end (use an async def task to stop it)", task_id)
        return False

    async def shutdown(self, timeout_s: float) -> bool:
        self._executor.shutdown(wait=False, cancel_futures=True)  # bodies not started are dropped
        with self._lock:
            running = list(self._bodies)
        if running and timeout_s > 0:
            waiting = [asyncio.wrap_future(body) for body in running]
            await asyncio.wait(waiting, timeout=timeout_s)
            for wait in waiting:
                wait.cancel()
        with self._lock:
            return bool(self._bodies)

    def _ended(self, body: Future[Any]) -> None:
        with self._lock:
            self._bodies.pop(body, None)


class SoloPool(ThreadPool):
    """One body at a time (``-P solo``), on one thread."""

    name = "solo"

    def __init__(self) -> None:
        super().__init__(1)


class InlinePool:
    """Eager ``apply()``: the body runs right here, on the calling thread, to its end.

    Time limits are not applied and ``cancel()`` refuses: nothing can interrupt the
    caller's own thread. Nothing is left running after a call, so ``shutdown()`` abandons
    nothing.
    """

    name = "inline"
    concurrency = 1

    async def run(self, task: Task[Any, Any], request: Request,
                  time_limit: float | None, soft_time_limit: float | None) -> Any:
        return run_body(task, request)  # never suspends: apply() drives it with no event loop

    def cancel(self, task_id: str, hard: bool, signum: int | None = None) -> bool:
        return False

    async def shutdown(self, timeout_s: float) -> bool:
        return False


INLINE = InlinePool()  # holds no state: one serves every apply()


def make_pool(name: str, concurrency: SupportsInt | None, *, app: Celery | None = None,
              max_tasks_per_child: int | None = None, max_memory_per_child: int | None = None,
              autoscale: tuple[int, int] | None = None) -> Pool:
    """The pool a worker's ``-P``/``worker_pool`` names.

    ``concurrency`` None: the app's ``worker_concurrency``, except for prefork, where an
    unchanged default (100) means one child per CPU, as in Celery. ``prefork`` forks its
    fork server here (see ``prefork.py``): call this before starting threads. The
    recycling limits default to the app's ``worker_max_tasks_per_child`` and
    ``worker_max_memory_per_child``; they and ``autoscale`` (max, min) mean something to
    prefork only. ``solo`` ignores the concurrency.
    """
    if name not in ("threads", "solo", "prefork"):
        if name not in ("gevent", "eventlet"):
            raise ConfigurationError(f"pool {name!r} is unknown; use threads, prefork or solo")
        logger.warning("pool %r is not available in this version; using threads (async def tasks "
                       "run on the event loop)", name)
        name = "threads"
    settings = app.settings if app is not None else None
    if concurrency is None:
        if settings is None:
            raise ConfigurationError("make_pool() needs a concurrency or an app")
        concurrency = settings.worker_concurrency
        if name == "prefork" and concurrency == DEFAULTS["worker_concurrency"]:
            concurrency = cpu_count()
    if name == "solo":
        return SoloPool()
    if name == "threads":
        return ThreadPool(int(concurrency))
    if app is None:
        raise ConfigurationError("the prefork pool needs the app (its children run the app's tasks)")
    from .prefork import PreforkPool

    most, least = int(concurrency), None
    if autoscale is not None:
        most, least = autoscale
    assert settings is not None
    return PreforkPool(
        most, app=app, min_children=least,
        max_tasks_per_child=max_tasks_per_child or settings.worker_max_tasks_per_child,
        max_memory_per_child=max_memory_per_child or settings.worker_max_memory_per_child,
    )


def cpu_count() -> int:
    """The CPUs this process may run on (a container's share, where the OS says so)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
