"""A real worker in a thread of the test process: ``start_worker(app)``, as Celery's.

The worker is celeriac's own ``Worker`` on its own event loop in a daemon thread, with
signal handling off. ``start_worker`` returns once it reserves (and, with
``perform_ping_check``, once it has run the ``celery.ping`` task), and on leaving stops it
as SIGTERM would: running tasks get ``shutdown_timeout`` seconds to finish. It takes the
app's broker, so ``memory://`` and ``sqlite:///`` (and a server) all work; with
``memory://`` the test and the worker share the broker inside the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from ... import _state
from ...app import Celery
from ...signals import Signal
from ...worker.loop import SHUTDOWN_FLUSH_TIMEOUT_S, Worker

logger = logging.getLogger("celeriac.contrib.testing")

#: Celery reads the embedded worker's log level from this variable; here it sets the level of
#: celeriac's loggers while the worker runs (unset: left as the test run configured them).
WORKER_LOGLEVEL = os.environ.get("WORKER_LOGLEVEL")

test_worker_starting = Signal("test_worker_starting")  # sender: the app
test_worker_started = Signal("test_worker_started")  # sender: the app; worker, consumer (None)
test_worker_stopped = Signal("test_worker_stopped")  # sender: the app; worker

# Our own Worker() arguments start_worker passes on; anything else Celery's WorkController
# takes (without_heartbeat, without_mingle, optimization, ...) is accepted and unused.
_OWN_PARAMETERS = ("lease_s", "until_empty")


def anon_nodename() -> str:
    """Celery's name for an embedded worker: ``gen<pid>@<host>``."""
    return f"gen{os.getpid()}@{socket.gethostname()}"


class TestWorkController(Worker):
    """A ``Worker`` that runs in a thread: ``stop()`` may be called from any thread."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, app: Celery, **options: Any) -> None:
        super().__init__(app, **options)
        self.error: BaseException | None = None  # what ended the worker's thread, if anything raised
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._thread: threading.Thread | None = None

    def serve(self) -> None:
        """Run the worker on a new event loop in the calling thread until it stops."""
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._loop_thread = threading.get_ident()
            await self.run()

        try:
            asyncio.run(main())
        except BaseException as exc:
            self.error = exc
            logger.error("the test worker %s failed", self.hostname, exc_info=exc)

    def stop(self) -> None:
        loop = self._loop
        if loop is not None and threading.get_ident() != self._loop_thread:
            if not loop.is_closed():
                with contextlib.suppress(RuntimeError):  # closed in between: it has stopped already
                    loop.call_soon_threadsafe(super().stop)
            return
        super().stop()

    def ensure_started(self, timeout: float | None = None) -> None:
        """Wait until the worker reserves tasks; raise if its thread ended first."""
        thread = self._thread
        waited = 0.0
        while not self.ready.wait(0.05):
            waited += 0.05
            if thread is not None and not thread.is_alive():
                raise RuntimeError(f"the test worker {self.hostname} stopped before it was ready") from self.error
            if timeout is not None and waited >= timeout:
                raise RuntimeError(f"the test worker {self.hostname} was not ready within {timeout:.0f}s")

    def reload(self, modules: Iterable[str] | None = None, reload: bool = False, reloader: Any = None) -> None:
        """Celery restarts its pool so that it sees new tasks. Here a worker finds each task by
        name when a message comes, so only ``modules`` are imported."""
        import importlib

        for name in modules or ():
            importlib.import_module(name)


def setup_app_for_worker(app: Celery, loglevel: str | int | None = None, logfile: str | None = None) -> None:
    """What a worker does to its app before it starts: import ``include``/``imports``, send
    the app's finalize signals, make it the current app."""
    app.import_default_modules()
    app.finalize()
    _state.set_current_app(app)


@contextmanager
def start_worker(
    app: Celery, concurrency: int = 1, pool: Any = "solo", loglevel: str | int | None = WORKER_LOGLEVEL,
    logfile: str | None = None, perform_ping_check: bool = True, ping_task_timeout: float = 10.0,
    shutdown_timeout: float = 10.0, **kwargs: Any,
) -> Iterator[TestWorkController]:
    """Start a worker for ``app`` in a thread; stop it when the block ends.

    ``queues`` (a list or comma-separated names), ``exclude_queues`` and ``hostname``
    (default ``gen<pid>@<host>``) are read as Celery's ``WorkController`` reads them.
    Raises ``RuntimeError`` if the worker does not stop within ``shutdown_timeout`` plus
    the few seconds its last writes may take.
    """
    test_worker_starting.send(sender=app)
    worker = None
    try:
        with _start_worker_thread(app, concurrency=concurrency, pool=pool, loglevel=loglevel, logfile=logfile,
                                  perform_ping_check=perform_ping_check, shutdown_timeout=shutdown_timeout,
                                  **kwargs) as worker:
            if perform_ping_check and app.result_backend_url() is not None:
                result = app.send_task("celery.ping", queue=worker.queues[0] if worker.queues else None)
                assert result.get(timeout=ping_task_timeout) == "pong"
            test_worker_started.send(sender=app, worker=worker, consumer=None)
            yield worker
    finally:
        test_worker_stopped.send(sender=app, worker=worker)


def _names(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [name.strip() for name in value.split(",") if name.strip()]
    return list(value)


@contextmanager
def _start_worker_thread(
    app: Celery, concurrency: int = 1, pool: Any = "solo", loglevel: str | int | None = WORKER_LOGLEVEL,
    logfile: str | None = None, WorkController: type[TestWorkController] = TestWorkController,
    perform_ping_check: bool = True, shutdown_timeout: float = 10.0, **kwargs: Any,
) -> Iterator[TestWorkController]:
    setup_app_for_worker(app, loglevel, logfile)
    if perform_ping_check:
        from . import tasks  # noqa: F401  (registers celery.ping)
    queues = _names(kwargs.pop("queues", None)) or [app.settings.task_default_queue]
    excluded = set(_names(kwargs.pop("exclude_queues", None)))
    own = {name: kwargs.pop(name) for name in _OWN_PARAMETERS if name in kwargs}
    hostname = kwargs.pop("hostname", None) or anon_nodename()
    if kwargs:
        logger.debug("start_worker: accepted and unused: %s", ", ".join(sorted(kwargs)))
    worker = WorkController(
        app, queues=[name for name in queues if name not in excluded], concurrency=concurrency,
        pool=pool if isinstance(pool, str) else None, hostname=hostname, shutdown_timeout_s=shutdown_timeout,
        handle_signals=False, **own,
    )
    with _worker_logging(loglevel, logfile):
        thread = threading.Thread(target=worker.serve, name=f"celeriac-test-worker-{hostname}", daemon=True)
        worker._thread = thread
        thread.start()
        try:
            worker.ensure_started()
            yield worker
        finally:
            worker.stop()
            # The worker gives running tasks shutdown_timeout, then its last writes and clean-up
            # at most SHUTDOWN_FLUSH_TIMEOUT_S each.
            thread.join(shutdown_timeout + 2 * SHUTDOWN_FLUSH_TIMEOUT_S + 1)
            if thread.is_alive():
                raise RuntimeError(
                    "Worker thread failed to exit within the allocated timeout. Consider raising "
                    "`shutdown_timeout` if your tasks take longer to execute."
                )


@contextmanager
def _worker_logging(loglevel: str | int | None, logfile: str | None) -> Iterator[None]:
    """While the worker runs: celeriac's loggers at ``loglevel`` and written to ``logfile``, if given."""
    target = logging.getLogger("celeriac")
    previous = target.level
    handler: logging.Handler | None = None
    if loglevel is not None:
        target.setLevel(loglevel.upper() if isinstance(loglevel, str) else loglevel)
    if logfile:
        handler = logging.FileHandler(logfile)
        handler.setFormatter(logging.Formatter("[%(asctime)s: %(levelname)s/%(threadName)s] %(message)s"))
        target.addHandler(handler)
    try:
        yield
    finally:
        target.setLevel(previous)
        if handler is not None:
            target.removeHandler(handler)
            handler.close()
