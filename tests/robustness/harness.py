"""One long-lived in-process worker per broker, and the checks every example ends with.

A :class:`Harness` runs a real :class:`~celeriac.worker.Worker` on a thread of its own
(its own event loop, as in a worker process) while hypothesis drives examples from the
test's thread through the public API: ``delay()``, ``AsyncResult.get()``, and, for raw
envelopes, ``OutgoingMessage`` straight through the broker. After each example it
checks that every message reached a final state (a result that is ready, or the
dead-letter queue with a reason), that a canary task succeeds, and that the worker is
alive and answers: its thread runs, its loop answers a probe, its supervised parts
(fetch loop, flusher) still run, and it holds no lease left over from the example.

A check that fails marks the worker suspect; the next example gets a fresh worker on a
fresh namespace (memory name, SQLite file, Redis key prefix), so that hypothesis shrinks
each failure on a healthy worker instead of blaming every later example on the first.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import threading
import time
import traceback
import uuid
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celeriac import Celery
from celeriac._bridge import new_loop, run_sync
from celeriac.exceptions import TimeoutError as ResultTimeout
from celeriac.message import READY_STATES
from celeriac.servers.contracts import OutgoingMessage
from celeriac.worker import Worker

# Seconds a message may take to reach a final state. A healthy in-process worker takes
# milliseconds; this is only how long a stuck message is waited for before it is blamed.
FINAL_TIMEOUT_S = float(os.environ.get("CELERIAC_FUZZ_TIMEOUT", "5"))
POLL_S = 0.2
# Every fuzz task returns or raises at once, so a message whose lease the worker still
# holds after this long is stuck (a task that never ends, an ack that is never written):
# its lease is renewed forever and it would never be redelivered.
STUCK_S = float(os.environ.get("CELERIAC_FUZZ_STUCK", "2"))

# What the tasks hand back or raise is parked here by the test thread and picked up by
# the worker thread (same process), so a task can return or raise values that could
# never travel as arguments: lone surrogates, NaN, sets, BaseExceptions.
STASH: dict[str, Any] = {}
PICKLE_RAN: list[str] = []  # a pickle payload that ran code would append here


def pickle_ran(marker: str) -> None:
    """What a poisoned pickle payload calls when it is loaded: it must never be."""
    PICKLE_RAN.append(marker)


class FuzzError(Exception):
    """The ordinary exception a task raises with a drawn message."""


class TwoArgError(Exception):
    """An exception whose constructor cannot be called with one message."""

    def __init__(self, code: Any, detail: Any) -> None:
        super().__init__(code, detail)


class BadStrError(Exception):
    """An exception whose ``str()`` itself raises."""

    def __str__(self) -> str:
        raise RuntimeError("this exception cannot be turned into text")


class FuzzBaseException(BaseException):
    """A BaseException that is not an Exception, as a library might define one."""


ECHO, AECHO = "fuzz.echo", "fuzz.aecho"
BOOM, ABOOM = "fuzz.boom", "fuzz.aboom"
GIVE, AGIVE = "fuzz.give", "fuzz.agive"
THROW, ATHROW = "fuzz.throw", "fuzz.athrow"
ADD, AADD = "fuzz.add", "fuzz.aadd"
TASK_NAMES = (ECHO, AECHO, BOOM, ABOOM, GIVE, AGIVE, THROW, ATHROW, ADD, AADD)


def make_app(url: str) -> Celery:
    """An app with the fuzz tasks, a sync and an async variant of each."""
    app = Celery("fuzz", broker=url, set_as_current=False)

    @app.task(name=ECHO)
    def echo(*args: Any, **kwargs: Any) -> Any:
        return {"args": list(args), "kwargs": kwargs}

    @app.task(name=AECHO)
    async def aecho(*args: Any, **kwargs: Any) -> Any:
        return {"args": list(args), "kwargs": kwargs}

    @app.task(name=BOOM)
    def boom(message: Any) -> None:
        raise FuzzError(message)

    @app.task(name=ABOOM)
    async def aboom(message: Any) -> None:
        raise FuzzError(message)

    @app.task(name=GIVE)
    def give(token: Any) -> Any:
        return STASH[token]

    @app.task(name=AGIVE)
    async def agive(token: Any) -> Any:
        return STASH[token]

    @app.task(name=THROW)
    def throw(token: Any) -> None:
        raise STASH[token]

    @app.task(name=ATHROW)
    async def athrow(token: Any) -> None:
        raise STASH[token]

    @app.task(name=ADD)
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name=AADD)
    async def aadd(x: int, y: int) -> int:
        return x + y

    return app


class HarnessFailure(AssertionError):
    """A property does not hold; the message says which and what the worker was doing."""


@dataclass
class Final:
    """How one message ended: a ready result, or a dead letter."""

    task_id: str
    state: str  # SUCCESS, FAILURE, REVOKED, or "DEAD-LETTERED"
    value: Any = None  # get(propagate=False): the value, or the exception
    reason: str | None = None  # the dead letter's reason
    dead_lettered: bool = False

    @property
    def outcome(self) -> str:
        return "dead-lettered" if self.dead_lettered else self.state


class _WorkerThread:
    """A Worker on a thread with its own event loop; records every task the loop creates."""

    def __init__(self, app: Celery, concurrency: int) -> None:
        self.app = app
        # A short warm shutdown: the harness stops a worker only to replace one a failure left in doubt.
        self.worker = Worker(app, handle_signals=False, concurrency=concurrency, shutdown_timeout_s=0.5)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.tasks: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
        self.died: BaseException | None = None
        self.ended = threading.Event()
        self.parts: set[str] = set()  # names of the supervised parts, seen once ready
        self.thread = threading.Thread(target=self._main, name="fuzz-worker", daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.worker.ready.is_set():
            if self.ended.is_set():
                raise HarnessFailure(f"the worker ended before it was ready: {self.died!r}")
            if time.monotonic() > deadline:
                raise HarnessFailure("the worker was not ready within 30 s")
            time.sleep(0.01)
        # The parts that must run as long as the worker does (the fetch loop starts right
        # after ``ready`` is set).
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            self.parts = {n for n, alive, _ in self.probe() if alive and _is_part(n)}
            if any("fetch" in n for n in self.parts):
                break
            time.sleep(0.01)

    def _main(self) -> None:
        loop = self.loop = new_loop()
        asyncio.set_event_loop(loop)
        default_factory = loop.get_task_factory()

        def recording_factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
            if default_factory is not None:
                task = default_factory(loop, coro, **kwargs)
            else:
                task = asyncio.Task(coro, loop=loop, **kwargs)
            self.tasks.add(task)
            return task

        loop.set_task_factory(recording_factory)
        try:
            loop.run_until_complete(self.worker.run())
        except BaseException as exc:  # SystemExit, KeyboardInterrupt: what kills a worker process
            self.died = exc
        finally:
            self.ended.set()
            with contextlib.suppress(BaseException):
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for t in pending:
                    t.cancel()
                if pending:
                    loop.run_until_complete(asyncio.wait(pending, timeout=2))
            with contextlib.suppress(BaseException):
                loop.close()

    def probe(self, timeout_s: float = 5.0) -> list[tuple[str, bool, str | None]]:
        """Ask the worker's loop for its named tasks: (name, still running, how it ended)."""
        loop = self.loop
        if loop is None or self.ended.is_set():
            raise HarnessFailure(self.death())

        async def look() -> list[tuple[str, bool, str | None]]:
            found = []
            for task in list(self.tasks):
                name = task.get_name()
                if not name.startswith("celeriac-"):
                    continue
                ending = None
                if task.done():
                    if task.cancelled():
                        ending = "cancelled"
                    elif task.exception() is not None:
                        exc = task.exception()
                        ending = "".join(traceback.format_exception(exc))
                    else:
                        ending = "returned"
                found.append((name, not task.done(), ending))
            return found

        future = asyncio.run_coroutine_threadsafe(look(), loop)
        try:
            return future.result(timeout_s)
        except TimeoutError:
            future.cancel()
            raise HarnessFailure(f"the worker's event loop did not answer a probe within {timeout_s}s "
                                 "(something blocks it)") from None

    def death(self) -> str:
        code = getattr(self.worker, "exit_code", None)
        how = f"raised {self.died!r}" if self.died is not None else f"returned (exit_code={code!r})"
        return f"the worker is not running: its run() {how}"

    def check_alive(self) -> None:
        if self.ended.is_set() or not self.thread.is_alive():
            raise HarnessFailure(self.death())

    def check_answers(self) -> None:
        self.check_alive()
        seen = self.probe()
        alive = {name for name, running, _ in seen if running}
        for name, running, ending in seen:
            if not running and ending not in (None, "cancelled", "returned") and name in self.parts:
                raise HarnessFailure(f"the worker's {name} task failed:\n{ending}")
        missing = self.parts - alive
        if missing:
            endings = "\n".join(f"{n}: {e}" for n, r, e in seen if n in missing and not r)
            raise HarnessFailure(f"the worker's {sorted(missing)} no longer run (the worker looks alive "
                                 f"but would never take another task):\n{endings}")

    def held_ids(self) -> set[str]:
        keeper = getattr(self.worker, "keeper", None)
        if keeper is None:
            return set()
        return {d.task_id for d in keeper.held()}

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Warm shutdown; False when the worker does not end in time (it is left behind)."""
        loop = self.loop
        if loop is not None and not self.ended.is_set():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.worker.stop)
        self.thread.join(timeout_s)
        return not self.thread.is_alive()


def _is_part(name: str) -> bool:
    """Whether a named task of the worker's loop is one that must run as long as the worker."""
    return name.startswith("celeriac-") and any(word in name for word in ("fetch", "flush", "dispatch"))


class Harness:
    """A worker and a producer on one namespace; replaced by a fresh pair after a failure."""

    def __init__(self, kind: str, new_url: Callable[[], str], concurrency: int = 8) -> None:
        self.kind = kind
        self.new_url = new_url
        self.concurrency = concurrency
        self.app: Celery | None = None
        self.worker: _WorkerThread | None = None
        self.suspect = True
        self.examples = 0
        self.restarts = 0
        self.stuck_workers = 0
        self._canary = itertools.count()

    def __repr__(self) -> str:
        return f"<worker on {self.kind}>"

    # --- lifecycle ------------------------------------------------------------------

    def healthy(self) -> Harness:
        """The harness, with a fresh worker if the last example left it in doubt."""
        if self.suspect or self.worker is None or self.worker.ended.is_set():
            self._restart()
        self.suspect = False
        self.examples += 1
        return self

    def _restart(self) -> None:
        self.close()
        self.restarts += 1
        self.app = make_app(self.new_url())
        self.worker = _WorkerThread(self.app, self.concurrency)
        self.worker.start()

    def close(self) -> None:
        if self.worker is not None and not self.worker.stop():
            self.stuck_workers += 1  # a wedged worker is left on its own (daemon) thread
        self.worker = None
        if self.app is not None:
            with contextlib.suppress(Exception):
                run_sync(self.app.close(), timeout_s=10)
        self.app = None

    @contextlib.contextmanager
    def example(self) -> Iterator[Harness]:
        """Run one example; a failure that may have hurt the worker gets the next one a fresh worker."""
        harness = self.healthy()
        try:
            yield harness
        except HarnessFailure:
            self.suspect = True
            raise
        except BaseException:
            # A wrong value, say: the worker is kept if it still answers and holds nothing.
            self.suspect = not self._still_healthy()
            raise

    def _still_healthy(self) -> bool:
        worker = self.worker
        if worker is None:
            return False
        try:
            worker.check_answers()
        except HarnessFailure:
            return False
        deadline = time.monotonic() + STUCK_S
        while worker.held_ids():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    # --- producing --------------------------------------------------------------------

    @property
    def worker_thread(self) -> _WorkerThread:
        assert self.worker is not None
        return self.worker

    def task(self, name: str) -> Any:
        assert self.app is not None
        return self.app.tasks[name]

    def publish_raw(self, messages: Sequence[OutgoingMessage]) -> None:
        assert self.app is not None
        run_sync(self.app.publish(list(messages)), timeout_s=30)

    def broker(self) -> Any:
        assert self.app is not None

        async def get() -> Any:
            assert self.app is not None
            return (await self.app.clients()).broker

        return run_sync(get(), timeout_s=30)

    # --- final states -----------------------------------------------------------------

    def dead_letter(self, task_id: str) -> Any:
        for letter in run_sync(self.broker().dead_letters(limit=100_000), timeout_s=30):
            if letter.task_id == task_id:
                return letter
        return None

    def wait_final(self, task_ids: Sequence[str], *, dead_ok: bool = True, heft: int = 0) -> Final:
        """Wait until one of ``task_ids`` (the ids a message may answer under) is final.

        A message is final when the result of one of its ids is ready, or (``dead_ok``)
        when its first id is in the dead-letter queue with a reason. ``heft`` (about how
        many characters the message carries) allows a second per megabyte more.
        """
        assert self.app is not None
        allowance = heft / 1_000_000
        stuck_s = STUCK_S + allowance
        deadline = time.monotonic() + FINAL_TIMEOUT_S + allowance
        results = [self.app.AsyncResult(task_id) for task_id in task_ids]
        held_since: float | None = None
        while True:
            self.worker_thread.check_alive()
            for result in results:
                try:
                    value = result.get(timeout=POLL_S / len(results), propagate=False)
                except ResultTimeout:
                    continue
                except Exception as exc:
                    raise HarnessFailure(
                        f"AsyncResult({result.id!r}).get(propagate=False) raised "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
                state = result.state
                if state not in READY_STATES:
                    raise HarnessFailure(f"get() returned but the state of {result.id!r} is {state}")
                final = Final(result.id, state, value)
                if state == "FAILURE" and type(value).__name__ == "WorkerLostError":
                    letter = self.dead_letter(task_ids[0])
                    if letter is not None:
                        final.reason, final.dead_lettered = letter.reason, True
                        if not (letter.reason or "").strip():
                            raise HarnessFailure(f"{task_ids[0]!r} was dead-lettered without a reason")
                return final
            if dead_ok:
                letter = self.dead_letter(task_ids[0])
                if letter is not None:
                    if not (letter.reason or "").strip():
                        raise HarnessFailure(f"{task_ids[0]!r} was dead-lettered without a reason")
                    return Final(task_ids[0], "DEAD-LETTERED", reason=letter.reason, dead_lettered=True)
            now = time.monotonic()
            if now > deadline:
                raise HarnessFailure(f"no final state within {FINAL_TIMEOUT_S + allowance:.1f}s; "
                                     f"{self._stuck_report(task_ids)}")
            if set(task_ids) & self.worker_thread.held_ids():
                held_since = held_since or now
                if now - held_since > stuck_s:
                    raise HarnessFailure(
                        f"message {task_ids[0]!r} is stuck: its task returns or raises at once, yet after "
                        f"{stuck_s:.1f}s the worker still holds (and renews) its lease with no final result; "
                        f"{self._stuck_report(task_ids)}")
            else:
                held_since = None

    def _stuck_report(self, task_ids: Sequence[str]) -> str:
        assert self.app is not None
        states = {task_id: self.app.AsyncResult(task_id).state for task_id in task_ids}
        held = self.worker_thread.held_ids()
        try:
            depths = run_sync(self.broker().queue_depths(), timeout_s=10)
        except Exception as exc:
            depths = f"<queue_depths() raised {exc!r}>"
        try:
            self.worker_thread.check_answers()
            health = "the worker answers"
        except HarnessFailure as exc:
            health = str(exc)
        return (f"message {task_ids[0]!r}: result states "
                f"{states}, not dead-lettered, held by the worker: {sorted(set(task_ids) & held) or 'no'}, "
                f"queue depths {depths}; {health}")

    # --- after every example ----------------------------------------------------------

    def check_canary_and_health(self, example_ids: Sequence[str] = ()) -> None:
        """A later task succeeds, the worker answers, and it holds nothing of the example."""
        n = next(self._canary)
        canary = self.task(ADD if n % 2 == 0 else AADD)
        result = canary.delay(n, 1)
        final = self.wait_final([result.id], dead_ok=False)
        if final.state != "SUCCESS" or final.value != n + 1:
            raise HarnessFailure(f"the canary add({n}, 1) ended {final.state} with {final.value!r}")
        worker = self.worker_thread
        worker.check_answers()
        deadline = time.monotonic() + FINAL_TIMEOUT_S
        while still_held := worker.held_ids() & set(example_ids):
            if time.monotonic() > deadline:
                raise HarnessFailure(f"the worker still holds the leases of {sorted(still_held)} after "
                                     "their results were final (they would never be redelivered)")
            time.sleep(0.02)
        if PICKLE_RAN:
            raise HarnessFailure(f"a pickle payload was loaded by the worker: {PICKLE_RAN}")
        run_sync(self.broker().purge_dead_letters(), timeout_s=30)


LOG_LIMIT = 2000


@contextlib.contextmanager
def short_logs() -> Iterator[None]:
    """Cut celeriac's log records to a readable size while the properties run.

    A task that raised a 4 MB message gets it logged whole, traceback and all; pytest
    would print every such record of a failing test.
    """
    make_record = logging.getLogRecordFactory()

    def shortened(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        if not record.name.startswith("celeriac"):
            return record
        message = record.getMessage()
        if len(message) > LOG_LIMIT:
            record.msg, record.args = message[:LOG_LIMIT] + f"... [{len(message)} characters]", None
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            if len(text) > LOG_LIMIT:
                text = text[: LOG_LIMIT // 2] + f"\n... [{len(text)} characters] ...\n" + text[-LOG_LIMIT // 2 :]
            record.exc_info, record.exc_text = None, text
        return record

    logging.setLogRecordFactory(shortened)
    try:
        yield
    finally:
        logging.setLogRecordFactory(make_record)


def fresh_urls(kind: str, tmp_path: Path, stack: contextlib.ExitStack) -> Callable[[], str]:
    """A factory of fresh, empty namespaces of one broker kind."""
    from ..conftest import redis_test_url, require_server

    counter = itertools.count()
    if kind == "memory":
        return lambda: f"memory://fuzz-{uuid.uuid4().hex}"
    if kind == "sqlite":
        return lambda: f"sqlite:///{tmp_path}/fuzz-{next(counter)}.db"
    if kind == "redis":
        with redis_test_url("probe"):
            pass  # skips (or fails under CI) without the Redis broker or server
        from ..conftest import REDIS_URL

        require_server(REDIS_URL)
        return lambda: stack.enter_context(redis_test_url("fuzz"))
    raise ValueError(kind)
