"""Helpers for integration tests against a running worker: Celery's ``celery.contrib.testing.manager``.

    from celeriac.contrib.testing.manager import Manager

    @pytest.fixture
    def manager(celery_app, celery_session_worker):
        manager = Manager(celery_app)
        yield manager
        manager.wait_until_idle()

``wait_for(fun, catch)`` calls ``fun`` until it stops raising one of ``catch`` (with a
growing pause, at most ``max_retries`` times); ``ensure_not_for_a_while`` checks that it
keeps raising; ``join(result)`` waits for a result or a ``ResultSet``; ``assert_accepted``
and ``assert_received`` wait until the workers report tasks through ``inspect()``
(``query_task``); ``wait_until_idle`` purges the queues and waits until no worker runs a
task. celeriac's workers start a task as soon as they reserve it, so a task is "received"
exactly when it is "accepted" (``inspect().reserved()`` is always empty).
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from itertools import count
from typing import TYPE_CHECKING, Any, TextIO

from ... import states
from ...exceptions import TimeoutError
from ...result import ResultSet

if TYPE_CHECKING:
    from ...app import Celery
    from ...control import Inspect

__all__ = ["Manager", "ManagerMixin", "Sentinel", "retry_over_time"]

E_STILL_WAITING = "Still waiting for {0}.  Trying again {when}: {exc!r}"

#: What ``join`` treats as a lost connection (remarks on it and tries again).
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (ConnectionError,)


class Sentinel(Exception):
    """Signifies the end of something (raised by ``true_or_raise`` while the condition is false)."""


def _intervals(start: float, step: float, maximum: float) -> Iterator[float]:
    """``start``, ``start + step``, ... up to ``maximum``, then ``maximum`` for ever (kombu's fxrange)."""
    current = start
    while True:
        yield min(current, maximum)
        current += step


def retry_over_time(fun: Callable[..., Any], catch: type[BaseException] | tuple[type[BaseException], ...],
                    args: Sequence[Any] | None = None, kwargs: dict[str, Any] | None = None,
                    errback: Callable[[BaseException, Iterator[float], int], float] | None = None,
                    max_retries: int | None = None, interval_start: float = 2, interval_step: float = 2,
                    interval_max: float = 30, callback: Callable[[], Any] | None = None,
                    timeout: float | None = None) -> Any:
    """Call ``fun(*args, **kwargs)`` until it returns without raising one of ``catch`` (kombu's).

    Between calls it sleeps the interval ``errback(exc, intervals, retries)`` returns (else
    the next of ``interval_start``, ``+ interval_step``, ... capped at ``interval_max``),
    calling ``callback`` each second of the sleep. The error is raised again after
    ``max_retries`` retries, or when the next pause would pass ``timeout`` seconds.
    """
    arguments = list(args or ())
    keywords = dict(kwargs or {})
    intervals = _intervals(interval_start, interval_step, interval_max)
    deadline = time.monotonic() + timeout if timeout else None
    for retries in count():
        try:
            return fun(*arguments, **keywords)
        except catch as exc:
            if max_retries is not None and retries >= max_retries:
                raise
            if deadline is not None and time.monotonic() > deadline:
                raise
            pause = float(errback(exc, intervals, retries) if errback else next(intervals))
            if deadline is not None and time.monotonic() + pause > deadline:
                raise
            if pause:
                for _ in range(int(pause)):
                    if callback:
                        callback()
                    time.sleep(1.0)
                time.sleep(abs(int(pause) - pause))
    raise AssertionError("unreachable")  # pragma: no cover  (count() never ends)


def _humanize(seconds: float) -> str:
    return f"in {seconds:.2f} seconds" if seconds else "now"


class ManagerMixin:
    """What :class:`Manager` can do, for a class with an ``app`` attribute (Celery's mixin)."""

    app: Celery

    def _init_manager(self, block_timeout: float = 30 * 60.0, no_join: bool = False,
                      stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
        self.stdout = sys.stdout if stdout is None else stdout
        self.stderr = sys.stderr if stderr is None else stderr
        self.connerrors = CONNECTION_ERRORS
        self.block_timeout = block_timeout
        self.no_join = no_join

    def remark(self, s: str, sep: str = "-") -> None:
        print(f"{sep}{s}", file=self.stdout)

    def warn(self, s: str) -> None:
        print(s, file=self.stderr)

    def missing_results(self, r: Iterable[Any]) -> list[str]:
        """The ids of the results in ``r`` that are not ready yet."""
        return [res.id for res in r if not res.ready()]

    def wait_for(self, fun: Callable[..., Any], catch: type[BaseException] | tuple[type[BaseException], ...],
                 desc: str = "thing", args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None,
                 errback: Callable[[BaseException, float, int], Any] | None = None, max_retries: int = 10,
                 interval_start: float = 0.1, interval_step: float = 0.5, interval_max: float = 5.0,
                 emit_warning: bool = False, **options: Any) -> Any:
        """Wait for an event: call ``fun`` until it no longer raises one of ``catch``.

        ``catch`` is what means the event has not happened yet; after ``max_retries`` the
        last such error is raised.
        """

        def on_error(exc: BaseException, intervals: Iterator[float], retries: int) -> float:
            interval = next(intervals)
            if emit_warning:
                self.warn(E_STILL_WAITING.format(desc, when=_humanize(interval), exc=exc))
            if errback:
                errback(exc, interval, retries)
            return interval

        # As in Celery, interval_max is not passed on (kombu's default cap applies).
        return self.retry_over_time(fun, catch, args=args, kwargs=kwargs or {}, errback=on_error,
                                    max_retries=max_retries, interval_start=interval_start,
                                    interval_step=interval_step, **options)

    def ensure_not_for_a_while(self, fun: Callable[..., Any],
                               catch: type[BaseException] | tuple[type[BaseException], ...],
                               desc: str = "thing", max_retries: int = 20, interval_start: float = 0.1,
                               interval_step: float = 0.02, interval_max: float = 1.0,
                               emit_warning: bool = False, **options: Any) -> None:
        """Make sure something does not happen, at least for a while: ``fun`` keeps raising."""
        try:
            self.wait_for(fun, catch, desc=desc, max_retries=max_retries, interval_start=interval_start,
                          interval_step=interval_step, interval_max=interval_max, emit_warning=emit_warning)
        except catch:
            pass
        else:
            raise AssertionError(f"Should not have happened: {desc}")

    def retry_over_time(self, *args: Any, **kwargs: Any) -> Any:
        return retry_over_time(*args, **kwargs)

    def join(self, r: Any, propagate: bool = False, max_retries: int = 10, **kwargs: Any) -> Any:
        """Wait for ``r`` (a result or a ``ResultSet``) and return its value(s).

        Each ``get`` that times out (pass ``timeout=``) is remarked on and tried again, up to
        ``max_retries`` times (0: for ever); then ``AssertionError``.
        """
        if self.no_join:
            return None
        if not isinstance(r, ResultSet):
            r = ResultSet([r], app=self.app)
        received: list[str] = []

        def on_result(task_id: str, value: Any) -> None:
            received.append(task_id)

        for _ in range(max_retries) if max_retries else count(0):
            received[:] = []
            try:
                return r.get(callback=on_result, propagate=propagate, **kwargs)
            except TimeoutError as exc:
                waiting_for = self.missing_results(r.results)
                self.remark(f"Still waiting for {len(r.results) - len(received)}/{len(r.results)}: "
                            f"[{', '.join(waiting_for)[:128]}]: {exc!r}", "!")
            except self.connerrors as exc:
                self.remark(f"join: connection lost: {exc!r}", "!")
        raise AssertionError("Test failed: Missing task results")

    def inspect(self, timeout: float = 3.0) -> Inspect:
        return self.app.control.inspect(timeout=timeout)

    def query_tasks(self, ids: Sequence[str], timeout: float = 0.5) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(hostname, {task_id: [state, info]})`` for each worker that knows one of ``ids``."""
        tasks = self.inspect(timeout).query_task(*ids) or {}
        yield from tasks.items()

    def query_task_states(self, ids: Sequence[str], timeout: float = 0.5) -> defaultdict[str, set[str]]:
        """``{state: {task_id, ...}}`` as the workers report them (``active``, ``reserved``, ``ready``)."""
        found: defaultdict[str, set[str]] = defaultdict(set)
        for _hostname, reply in self.query_tasks(ids, timeout=timeout):
            for task_id, (state, _info) in reply.items():
                found[state].add(task_id)
        return found

    def assert_accepted(self, ids: Sequence[str], interval: float = 0.5,
                        desc: str = "waiting for tasks to be accepted", **policy: Any) -> Any:
        """Wait until a worker runs (or ran) each of ``ids``."""
        return self.assert_task_worker_state(self.is_accepted, ids, interval=interval, desc=desc, **policy)

    def assert_received(self, ids: Sequence[str], interval: float = 0.5,
                        desc: str = "waiting for tasks to be received", **policy: Any) -> Any:
        """Wait until a worker holds each of ``ids``."""
        return self.assert_task_worker_state(self.is_received, ids, interval=interval, desc=desc, **policy)

    def assert_result_tasks_in_progress_or_completed(
        self, async_results: Sequence[Any], interval: float = 0.5,
        desc: str = "waiting for tasks to be started or completed", **policy: Any,
    ) -> Any:
        """Wait until each result's state is ``STARTED`` or ``SUCCESS``."""
        return self.assert_task_state_from_result(self.is_result_task_in_progress, async_results,
                                                  interval=interval, desc=desc, **policy)

    def assert_task_state_from_result(self, fun: Callable[..., bool], results: Sequence[Any],
                                      interval: float = 0.5, **policy: Any) -> Any:
        return self.wait_for(partial(self.true_or_raise, fun, results, timeout=interval), (Sentinel,), **policy)

    @staticmethod
    def is_result_task_in_progress(results: Sequence[Any], **kwargs: Any) -> bool:
        possible = (states.STARTED, states.SUCCESS)
        return all(result.state in possible for result in results)

    def assert_task_worker_state(self, fun: Callable[..., bool], ids: Sequence[str], interval: float = 0.5,
                                 **policy: Any) -> Any:
        return self.wait_for(partial(self.true_or_raise, fun, ids, timeout=interval), (Sentinel,), **policy)

    def is_received(self, ids: Sequence[str], **kwargs: Any) -> bool:
        return self._ids_matches_state(["reserved", "active", "ready"], ids, **kwargs)

    def is_accepted(self, ids: Sequence[str], **kwargs: Any) -> bool:
        return self._ids_matches_state(["active", "ready"], ids, **kwargs)

    def _ids_matches_state(self, expected_states: Sequence[str], ids: Sequence[str], timeout: float = 0.5) -> bool:
        found = self.query_task_states(ids, timeout=timeout)
        return all(any(t in found[state] for state in expected_states) for t in ids)

    def true_or_raise(self, fun: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        res = fun(*args, **kwargs)
        if not res:
            raise Sentinel()
        return res

    def wait_until_idle(self) -> None:
        """Purge every queue (until nothing is left), then wait until no worker runs a task.

        Gives up with ``AssertionError`` after ``block_timeout`` seconds.
        """
        control = self.app.control
        while control.purge():
            pass
        deadline = time.monotonic() + self.block_timeout
        inspect = control.inspect()
        while True:
            active = inspect.active() or {}
            if not sum(len(tasks) for tasks in active.values()):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"the workers still run tasks after {self.block_timeout} s: {active}")
            time.sleep(0.1)


class Manager(ManagerMixin):
    """Test helpers for task integration tests."""

    def __init__(self, app: Celery, **kwargs: Any) -> None:
        self.app = app
        self._init_manager(**kwargs)
