"""Results: ``AsyncResult`` (a handle on a task's outcome), ``EagerResult``, ``ResultSet`` and
``GroupResult``; ``allow_join_result`` for the rare task that must wait for another."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import sys
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from . import _state
from ._bridge import run_sync
from .exceptions import TaskError, TimeoutError, stamping_not_available
from .message import (
    EXCEPTION_STATES,
    FAILURE,
    PENDING,
    READY_STATES,
    REVOKED,
    SUCCESS,
    ResultRecord,
)
from .serialization import from_wire

if TYPE_CHECKING:
    from .app import Celery

R = TypeVar("R")

# The states whose exception ``get()`` raises, here and from a failed parent.
PROPAGATE_STATES = frozenset({FAILURE, REVOKED})

# --- waiting inside a task ---------------------------------------------------------------
#
# As in Celery, ``get()`` refuses to block where that would tie up a worker: in a process
# that says so (``_set_task_join_will_block(True)``, as a prefork child would), unless the
# call is inside ``allow_join_result()``. Threads and ``solo`` workers do not set it.

_join_will_block = False
_join_override: contextvars.ContextVar[bool | None] = contextvars.ContextVar("celeriac_join_blocks", default=None)

E_WOULDBLOCK = (
    "Never call result.get() within a task! See "
    "https://docs.celeryq.dev/en/latest/userguide/tasks.html#avoid-launching-synchronous-subtasks"
)


def _set_task_join_will_block(blocks: bool) -> None:
    global _join_will_block
    _join_will_block = bool(blocks)


def task_join_will_block() -> bool:
    override = _join_override.get()
    return _join_will_block if override is None else override


def assert_will_not_block() -> None:
    if task_join_will_block():
        raise RuntimeError(E_WOULDBLOCK)


@contextlib.contextmanager
def allow_join_result() -> Iterator[None]:
    """Let ``get()`` block inside a task (Celery's escape hatch, use sparingly)."""
    token = _join_override.set(False)
    try:
        yield
    finally:
        _join_override.reset(token)


@contextlib.contextmanager
def denied_join_result() -> Iterator[None]:
    token = _join_override.set(True)
    try:
        yield
    finally:
        _join_override.reset(token)


class AsyncResult(Generic[R]):
    """A task's state and outcome, read from the result store.

    Blocking methods have async twins (``aget``, ``astate`` ...); ``await result`` is
    ``await result.aget()``.
    """

    def __init__(
        self, id: str, backend: Any = None, task_name: str | None = None, app: Celery | None = None,
        parent: AsyncResult[Any] | None = None, ignored: bool = False,
    ) -> None:
        app = _app_or_current(app)
        self.id = id
        self.app = app
        self.backend = backend
        self.task_name = task_name
        self.parent = parent
        self.ignored = ignored
        self._record: ResultRecord | None = None  # cached once ready

    # --- identity -------------------------------------------------------------------

    @property
    def task_id(self) -> str:
        return self.id

    def __repr__(self) -> str:
        return f"<AsyncResult: {self.id}>"

    def __str__(self) -> str:
        return self.id

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AsyncResult):
            return other.id == self.id
        if isinstance(other, str):
            return other == self.id
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)

    # --- reading the record ---------------------------------------------------------

    async def _afetch(self) -> ResultRecord | None:
        if self._record is not None:
            return self._record
        store = await self.app.result_store()
        record = await store.fetch(self.id)
        if record is not None and record.state in READY_STATES:
            self._record = record
        return record

    def _fetch(self) -> ResultRecord | None:
        if self._record is not None:
            return self._record
        return run_sync(self._afetch())

    async def astate(self) -> str:
        record = await self._afetch()
        return record.state if record else PENDING

    @property
    def state(self) -> str:
        record = self._fetch()
        return record.state if record else PENDING

    status = state

    def ready(self) -> bool:
        return self.state in READY_STATES

    async def aready(self) -> bool:
        return (await self.astate()) in READY_STATES

    def successful(self) -> bool:
        return self.state == SUCCESS

    def failed(self) -> bool:
        return self.state == FAILURE

    @property
    def result(self) -> Any:
        """The return value once successful, the exception once failed, else None."""
        return _outcome(self._fetch())

    info = result

    @property
    def traceback(self) -> str | None:
        record = self._fetch()
        return record.traceback if record else None

    @property
    def date_done(self) -> dt.datetime | None:
        """When the task finished, as a naive UTC datetime (as Celery shows it)."""
        record = self._fetch()
        if record is None or record.date_done_ms is None:
            return None
        return dt.datetime.fromtimestamp(record.date_done_ms / 1000, dt.UTC).replace(tzinfo=None)

    @property
    def name(self) -> str | None:
        record = self._fetch()
        return (record.name if record else None) or self.task_name

    @property
    def args(self) -> list[Any] | None:
        record = self._fetch()
        return from_wire(record.args) if record and record.args is not None else None

    @property
    def kwargs(self) -> dict[str, Any] | None:
        record = self._fetch()
        return from_wire(record.kwargs) if record and record.kwargs is not None else None

    @property
    def retries(self) -> int:
        record = self._fetch()
        return record.retries if record else 0

    @property
    def worker(self) -> str | None:
        record = self._fetch()
        return record.worker if record else None

    @property
    def children(self) -> list[AsyncResult[Any]]:
        record = self._fetch()
        return [AsyncResult(c, app=self.app) for c in record.children] if record else []

    # --- waiting --------------------------------------------------------------------

    def get(
        self, timeout: float | None = None, propagate: bool = True, interval: float = 0.5,
        no_ack: bool = True, follow_parents: bool = True, disable_sync_subtasks: bool = True,
        **_: Any,
    ) -> R:
        """Wait for the outcome: the return value, or the task's exception raised here.

        Waits on a notification, not a poll loop (SQLite across processes polls with a
        bounded back-off). On a result sent with ``ignore_result`` returns None at once.
        As in Celery, when the result has parents (a chain's earlier steps, a chord's
        header), a failed parent's exception is raised, the earliest first, without
        waiting for a result that may never come.
        """
        if self.ignored:
            return None  # type: ignore[return-value]
        if disable_sync_subtasks:
            assert_will_not_block()
        return run_sync(self.aget(timeout=timeout, propagate=propagate, interval=interval,
                                  follow_parents=follow_parents))

    async def aget(self, timeout: float | None = None, propagate: bool = True, interval: float = 0.5,
                   follow_parents: bool = True) -> R:
        if self.ignored:
            return None  # type: ignore[return-value]
        follow = propagate and follow_parents and self.parent is not None
        if follow:
            await _araise_failed_parent(self)
        record = self._record
        if record is None:
            store = await self.app.result_store()
            if not follow:
                record = await store.wait_ready(self.id, timeout)
            else:  # wait in slices, looking at the parents between them
                deadline = None if timeout is None else time.monotonic() + timeout
                step = max(float(interval or 0.0), 1.0)
                while True:
                    left = None if deadline is None else max(0.0, deadline - time.monotonic())
                    record = await store.wait_ready(self.id, step if left is None else min(step, left))
                    if record is not None and record.state in READY_STATES:
                        break
                    if deadline is not None and time.monotonic() >= deadline:
                        break
                    await _araise_failed_parent(self)
            if record is None or record.state not in READY_STATES:
                raise TimeoutError(
                    f"task {self.id} did not finish within {timeout}s (state "
                    f"{record.state if record else PENDING})"
                )
            self._record = record
        if follow and record.state in PROPAGATE_STATES:
            await _araise_failed_parent(self)
        return _value_or_raise(record, propagate)  # type: ignore[no-any-return]

    def maybe_throw(self, propagate: bool = True, callback: Any = None) -> None:
        """Raise the task's exception if it failed (without waiting)."""
        record = self._fetch()
        if propagate and record is not None and record.state in PROPAGATE_STATES:
            raise self._exception_of(record)

    def _exception_of(self, record: ResultRecord) -> BaseException:
        return exception_from_record(record)

    wait = get

    def __await__(self) -> Generator[Any, None, R]:
        return self.aget().__await__()

    def then(self, callback: Callable[[AsyncResult[R]], Any], on_error: Callable[..., Any] | None = None) -> Any:
        """Run ``callback(self)`` once ready; returns an awaitable (use inside a loop)."""

        async def _wait() -> Any:
            try:
                await self.aget(propagate=True)
            except Exception as exc:
                if on_error is not None:
                    return on_error(exc)
                raise
            return callback(self)

        return _wait()

    # --- acting ---------------------------------------------------------------------

    def forget(self) -> None:
        self._record = None
        run_sync(self._aforget())

    async def _aforget(self) -> None:
        store = await self.app.result_store()
        await store.forget(self.id)

    def revoke(self, connection: Any = None, terminate: bool = False, signal: str | int | None = None,
               wait: bool = False, timeout: float | None = None, **_: Any) -> None:
        """Revoke this task; ``terminate=True`` stops it if it runs (with the prefork pool, its
        child gets ``signal``, SIGTERM by default). ``wait``: return once the workers answered."""
        self.app.control.revoke(self.id, terminate=terminate, signal=signal, reply=wait,
                                timeout=1.0 if timeout is None else timeout)

    def revoke_by_stamped_headers(self, headers: dict[str, Any], terminate: bool = False,
                                  signal: str | None = None, **_: Any) -> None:
        """Celery's revoke by stamps: not available (raises ``NotAvailable``); revoke by id instead."""
        raise stamping_not_available("AsyncResult.revoke_by_stamped_headers()")

    def as_tuple(self) -> tuple[Any, ...]:
        """Celery's form: ``((id, parent's tuple or None), None)``; see ``result_from_tuple``."""
        return ((self.id, self.parent.as_tuple() if self.parent is not None else None), None)


class EagerResult(AsyncResult[R]):
    """The outcome of ``task.apply()``: already known, no store involved."""

    def __init__(self, id: str, record: ResultRecord, app: Celery | None = None, task_name: str | None = None) -> None:
        super().__init__(id, app=app, task_name=task_name)
        self._record = record
        self._exception: BaseException | None = None

    def _fetch(self) -> ResultRecord | None:
        return self._record

    async def _afetch(self) -> ResultRecord | None:
        return self._record

    def get(self, timeout: float | None = None, propagate: bool = True, interval: float = 0.5,
            no_ack: bool = True, follow_parents: bool = True, disable_sync_subtasks: bool = True,
            **_: Any) -> R:
        assert self._record is not None
        if propagate and follow_parents and self.parent is not None:
            _raise_failed_parent(self)
        if self._exception is not None and self._record.state in EXCEPTION_STATES:
            if propagate:
                raise self._exception
            return self._exception  # type: ignore[return-value]
        return _value_or_raise(self._record, propagate)  # type: ignore[no-any-return]

    async def aget(self, timeout: float | None = None, propagate: bool = True, interval: float = 0.5,
                   follow_parents: bool = True) -> R:
        return self.get(timeout=timeout, propagate=propagate, follow_parents=follow_parents)

    def _exception_of(self, record: ResultRecord) -> BaseException:
        return self._exception if self._exception is not None else exception_from_record(record)

    @property
    def result(self) -> Any:
        if self._exception is not None:
            return self._exception
        return _outcome(self._record)

    info = result

    def forget(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"<EagerResult: {self.id}>"


def _app_or_current(app: Celery | None) -> Celery:
    if app is not None:
        return app
    return _state.get_current_app()


def _outcome(record: ResultRecord | None) -> Any:
    if record is None:
        return None
    if record.state == SUCCESS:
        return from_wire(record.result)
    if record.state in EXCEPTION_STATES:
        return exception_from_record(record)
    return from_wire(record.result)


def _value_or_raise(record: ResultRecord, propagate: bool) -> Any:
    if record.state == SUCCESS:
        return from_wire(record.result)
    exc = exception_from_record(record)
    if propagate:
        raise exc
    return exc


def exception_from_record(record: ResultRecord) -> BaseException:
    """Re-create the task's exception: its own class when importable and safe, else TaskError."""
    exc_type = record.exc_type or "Exception"
    message = record.exc_message or ""
    cls = _exception_class(exc_type)
    exc: BaseException
    stored_args = tuple(from_wire(record.exc_args)) if record.exc_args is not None else None
    if cls is None:
        exc = TaskError(exc_type, message, record.traceback, exc_args=stored_args)
    elif stored_args is not None:  # re-created with the args it was raised with
        try:
            exc = cls(*stored_args)
        except Exception:  # its __init__ takes other arguments than its args: say what it was
            exc = TaskError(exc_type, message, record.traceback, exc_args=stored_args)
    else:
        try:
            exc = cls(message)
        except Exception:
            exc = cls.__new__(cls)
            exc.args = (message,)
    if record.traceback:
        exc.add_note(f"Remote traceback (task {record.task_id}):\n{record.traceback}")
    return exc


def _exception_class(path: str) -> type[Exception] | None:
    module_name, _, qualname = path.rpartition(".")
    if not module_name:
        module_name, qualname = "builtins", path
    # Only modules already imported here: a result must not be able to make us import code.
    target: Any = sys.modules.get(module_name)
    if target is None:
        return None
    try:
        for part in qualname.split("."):
            target = getattr(target, part)
    except AttributeError:
        return None
    if isinstance(target, type) and issubclass(target, Exception):
        return target
    return None


class ResultSet:
    """Several results used as one (Celery's ``ResultSet``): ``get()`` lists them in order."""

    def __init__(self, results: Iterable[Any] | None = None, app: Celery | None = None, **_: Any) -> None:
        self.results: list[Any] = list(results or [])
        self._app = app

    @property
    def app(self) -> Celery:
        if self._app is not None:
            return self._app
        for result in self.results:
            found = getattr(result, "_app", None) or getattr(result, "app", None)
            if found is not None:
                return found  # type: ignore[no-any-return]
        return _state.get_current_app()

    @app.setter
    def app(self, app: Celery) -> None:
        self._app = app

    # --- the set ----------------------------------------------------------------------

    def add(self, result: Any) -> None:
        if result not in self.results:
            self.results.append(result)

    def update(self, results: Iterable[Any]) -> None:
        self.results.extend(r for r in results if r not in self.results)

    def remove(self, result: Any) -> None:
        if isinstance(result, str):
            result = AsyncResult(result, app=self._app)
        try:
            self.results.remove(result)
        except ValueError:
            raise KeyError(result) from None

    def discard(self, result: Any) -> None:
        with contextlib.suppress(KeyError):
            self.remove(result)

    def clear(self) -> None:
        self.results[:] = []

    def __iter__(self) -> Iterator[Any]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, index: int) -> Any:
        return self.results[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ResultSet):
            return other.results == self.results
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(r.id for r in self.results))

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: [{', '.join(str(r.id) for r in self.results)}]>"

    # --- states -----------------------------------------------------------------------

    async def _astates(self) -> list[str]:
        """Each member's state; a nested set counts as FAILURE/REVOKED if one of its members
        did, SUCCESS if all did, else PENDING. Eager results never touch the store."""
        wanted = [r.id for r in self.results if isinstance(r, AsyncResult) and r._record is None]
        found: dict[str, ResultRecord] = {}
        if wanted:
            store = await self.app.result_store()
            found = await store.fetch_many(wanted)
        states = []
        for r in self.results:
            if isinstance(r, ResultSet):
                inner = await r._astates()
                bad = [s for s in inner if s in PROPAGATE_STATES]
                states.append(bad[0] if bad else SUCCESS if all(s == SUCCESS for s in inner) else PENDING)
                continue
            record = r._record or found.get(r.id)
            if record is not None and record.state in READY_STATES and r._record is None:
                r._record = record
            states.append(record.state if record is not None else PENDING)
        return states

    def _states(self) -> list[str]:
        if all(isinstance(r, AsyncResult) and r._record is not None for r in self.results):
            return [r._record.state for r in self.results]
        return run_sync(self._astates())

    def completed_count(self) -> int:
        """How many members succeeded."""
        return sum(state == SUCCESS for state in self._states())

    def ready(self) -> bool:
        return all(state in READY_STATES for state in self._states())

    def successful(self) -> bool:
        return all(state == SUCCESS for state in self._states())

    def failed(self) -> bool:
        return any(state == FAILURE for state in self._states())

    def waiting(self) -> bool:
        return not self.ready()

    def maybe_throw(self, callback: Any = None, propagate: bool = True) -> None:
        """Raise the first failed member's exception, in member order (without waiting)."""
        if propagate:
            _raise_first_failure([self])

    # --- waiting ----------------------------------------------------------------------

    def get(self, timeout: float | None = None, propagate: bool = True, interval: float = 0.5,
            callback: Callable[[str, Any], Any] | None = None, no_ack: bool = True,
            on_message: Any = None, disable_sync_subtasks: bool = True, on_interval: Any = None,
            **_: Any) -> list[Any] | None:
        """Every member's result, in member order; raises the first failure when propagating.

        With ``callback``, calls ``callback(task_id, value)`` for each member instead and
        returns None, as Celery does.
        """
        return self.join(timeout=timeout, propagate=propagate, callback=callback,
                         disable_sync_subtasks=disable_sync_subtasks)

    def join(self, timeout: float | None = None, propagate: bool = True, interval: float = 0.5,
             callback: Callable[[str, Any], Any] | None = None, no_ack: bool = True,
             on_message: Any = None, disable_sync_subtasks: bool = True, on_interval: Any = None,
             **_: Any) -> list[Any] | None:
        if disable_sync_subtasks:
            assert_will_not_block()
        values: list[Any] = run_sync(self.aget(timeout=timeout, propagate=propagate))
        if callback is None:
            return values
        for result, value in zip(self.results, values, strict=True):
            callback(result.id, value)
        return None

    join_native = join

    def supports_native_join(self) -> bool:
        return True

    async def aget(self, timeout: float | None = None, propagate: bool = True) -> list[Any]:
        async def one(result: Any) -> Any:
            if isinstance(result, ResultSet):
                return await result.aget(timeout=timeout, propagate=False)
            return await result.aget(timeout=timeout, propagate=False, follow_parents=False)

        outcomes = list(await asyncio.gather(*(one(r) for r in self.results)))
        if propagate:
            first = _first_exception(outcomes)
            if first is not None:
                raise first
        return outcomes

    def __await__(self) -> Generator[Any, None, list[Any]]:
        return self.aget().__await__()

    # --- acting -----------------------------------------------------------------------

    def revoke(self, connection: Any = None, terminate: bool = False, signal: str | int | None = None,
               wait: bool = False, timeout: float | None = None, **_: Any) -> None:
        """Revoke every task in the set (``terminate``/``signal`` as ``AsyncResult.revoke``)."""
        ids = [r.id for r in _leaves_of(self)]
        if ids:
            self.app.control.revoke(ids, terminate=terminate, signal=signal, reply=wait,
                                    timeout=1.0 if timeout is None else timeout)

    def forget(self) -> None:
        for r in self.results:
            r.forget()


class GroupResult(ResultSet):
    """The results of a group, in member order: ``GroupResult(id, results)`` as in Celery."""

    def __init__(self, id: str | None = None, results: Iterable[Any] | None = None, parent: Any = None,
                 app: Celery | None = None, **kwargs: Any) -> None:
        super().__init__(results, app=app, **kwargs)
        self.id = id
        self.parent = parent

    def __repr__(self) -> str:
        return f"<GroupResult: {self.id} [{', '.join(str(r.id) for r in self.results)}]>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, GroupResult):
            return other.id == self.id and other.results == self.results
        if isinstance(other, str):
            return other == self.id
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)

    def __str__(self) -> str:
        return str(self.id)

    @property
    def children(self) -> list[Any]:
        return self.results

    def save(self, backend: Any = None) -> GroupResult:
        """Remember the member ids in the result store, for ``GroupResult.restore(id)``."""
        group_id = self.id
        if group_id is None:
            raise ValueError("this GroupResult has no id to save it under")

        async def _save() -> None:
            store = await self.app.result_store()
            await store.save_group(group_id, [r.id for r in self.results])

        run_sync(_save())
        return self

    @classmethod
    def restore(cls, id: str, backend: Any = None, app: Celery | None = None) -> GroupResult | None:
        bound_app = _app_or_current(app)

        async def _restore() -> list[str] | None:
            store = await bound_app.result_store()
            return await store.restore_group(id)

        member_ids = run_sync(_restore())
        if member_ids is None:
            return None
        return cls(id, [AsyncResult(m, app=bound_app) for m in member_ids], app=bound_app)

    def as_tuple(self) -> tuple[Any, ...]:
        """Celery's form: ``((id, parent's tuple or None), [each member's tuple])``."""
        parent = self.parent.as_tuple() if self.parent is not None else None
        return ((self.id, parent), [r.as_tuple() for r in self.results])


def result_from_tuple(r: Any, app: Celery | None = None) -> Any:
    """An ``AsyncResult``/``GroupResult`` (with its parents) from its ``as_tuple()`` form."""
    if isinstance(r, (AsyncResult, ResultSet)):
        return r
    head, members = r
    task_id, parent = head if isinstance(head, (list, tuple)) else (head, None)
    parent_result = result_from_tuple(parent, app) if parent else None
    if members is not None:
        return GroupResult(task_id, [result_from_tuple(m, app) for m in members], parent=parent_result, app=app)
    return AsyncResult(task_id, app=app, parent=parent_result)


# --- following parents ---------------------------------------------------------------------


def _parents_of(result: Any) -> list[Any]:
    """The result's ancestors, the earliest first."""
    found: list[Any] = []
    seen: set[int] = set()
    node = getattr(result, "parent", None)
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        found.append(node)
        node = getattr(node, "parent", None)
    found.reverse()
    return found


def _leaves_of(node: Any) -> Iterator[AsyncResult[Any]]:
    if isinstance(node, ResultSet):
        for member in node.results:
            yield from _leaves_of(member)
    elif isinstance(node, AsyncResult):
        yield node


def _raise_first_failure(nodes: list[Any], found: dict[str, ResultRecord] | None = None) -> None:
    """Raise the exception of the first failed result among ``nodes`` (in order), if any.

    Uses records already known (eager results, cached ready ones, ``found``); anything else
    is read from the store.
    """
    leaves = [leaf for node in nodes for leaf in _leaves_of(node)]
    if found is None and any(leaf._record is None for leaf in leaves):
        run_sync(_araise_failed_nodes(nodes))
        return
    for leaf in leaves:
        record = leaf._record or (found or {}).get(leaf.id)
        if record is None:
            continue
        if record.state in READY_STATES and leaf._record is None:
            leaf._record = record
        if record.state in PROPAGATE_STATES:
            raise leaf._exception_of(record)


async def _araise_failed_nodes(nodes: list[Any]) -> None:
    leaves = [leaf for node in nodes for leaf in _leaves_of(node)]
    unknown = [leaf.id for leaf in leaves if leaf._record is None]
    found: dict[str, ResultRecord] = {}
    if unknown:
        store = await leaves[0].app.result_store()
        found = await store.fetch_many(unknown)
    _raise_first_failure(nodes, found)


async def _araise_failed_parent(result: Any) -> None:
    """Raise a failed ancestor's exception (the earliest one), as Celery's ``get()`` does."""
    parents = _parents_of(result)
    if parents:
        await _araise_failed_nodes(parents)


def _raise_failed_parent(result: Any) -> None:
    parents = _parents_of(result)
    if parents:
        _raise_first_failure(parents)


def _first_exception(outcomes: list[Any]) -> BaseException | None:
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            return outcome
        if isinstance(outcome, list):
            inner = _first_exception(outcome)
            if inner is not None:
                return inner
    return None
