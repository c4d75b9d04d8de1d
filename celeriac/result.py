"""Results: ``AsyncResult`` (a handle on a task's outcome) and ``EagerResult``."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from . import _state
from ._bridge import run_sync
from .exceptions import TaskError, TimeoutError
from .message import (
    EXCEPTION_STATES,
    FAILURE,
    PENDING,
    READY_STATES,
    SUCCESS,
    ResultRecord,
)
from .serialization import from_wire

if TYPE_CHECKING:
    from .app import Celery

R = TypeVar("R")


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
        disable_sync_subtasks: bool = True, **_: Any,
    ) -> R:
        """Wait for the outcome: the return value, or the task's exception raised here.

        Waits on a notification, not a poll loop (SQLite across processes polls with a
        bounded back-off). On a result sent with ``ignore_result`` returns None at once.
        """
        if self.ignored:
            return None  # type: ignore[return-value]
        return run_sync(self.aget(timeout=timeout, propagate=propagate))

    async def aget(self, timeout: float | None = None, propagate: bool = True) -> R:
        if self.ignored:
            return None  # type: ignore[return-value]
        record = self._record
        if record is None:
            store = await self.app.result_store()
            record = await store.wait_ready(self.id, timeout)
            if record is None or record.state not in READY_STATES:
                raise TimeoutError(
                    f"task {self.id} did not finish within {timeout}s (state "
                    f"{record.state if record else PENDING})"
                )
            self._record = record
        return _value_or_raise(record, propagate)  # type: ignore[no-any-return]

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

    def revoke(self, terminate: bool = False, **_: Any) -> None:
        self.app.control.revoke(self.id, terminate=terminate)

    def as_tuple(self) -> tuple[str, Any]:
        return (self.id, self.parent.as_tuple() if self.parent else None)


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
            disable_sync_subtasks: bool = True, **_: Any) -> R:
        assert self._record is not None
        if self._exception is not None and propagate and self._record.state in EXCEPTION_STATES:
            raise self._exception
        return _value_or_raise(self._record, propagate)  # type: ignore[no-any-return]

    async def aget(self, timeout: float | None = None, propagate: bool = True) -> R:
        return self.get(timeout=timeout, propagate=propagate)

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
    if cls is None:
        exc = TaskError(exc_type, message, record.traceback)
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


class GroupResult:
    """The results of a group, in member order."""

    def __init__(self, id: str, results: list[Any], app: Celery | None = None,
                 parent: Any = None) -> None:
        app = _app_or_current(app)
        self.id = id
        self.results = results
        self.app = app
        self.parent = parent

    def __repr__(self) -> str:
        return f"<GroupResult: {self.id} [{', '.join(r.id for r in self.results)}]>"

    def __iter__(self) -> Any:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, index: int) -> Any:
        return self.results[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, GroupResult):
            return other.id == self.id and other.results == self.results
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def children(self) -> list[Any]:
        return self.results

    async def _states(self) -> list[str]:
        store = await self.app.result_store()
        found = await store.fetch_many([r.id for r in self.results])
        return [found[r.id].state if r.id in found else PENDING for r in self.results]

    def _run(self, coro: Any) -> Any:
        return run_sync(coro)

    def completed_count(self) -> int:
        return sum(state == SUCCESS for state in self._run(self._states()))

    def ready(self) -> bool:
        return all(state in READY_STATES for state in self._run(self._states()))

    def successful(self) -> bool:
        return all(state == SUCCESS for state in self._run(self._states()))

    def failed(self) -> bool:
        return any(state == FAILURE for state in self._run(self._states()))

    def waiting(self) -> bool:
        return not self.ready()

    def get(self, timeout: float | None = None, propagate: bool = True, **_: Any) -> list[Any]:
        """Every member's result, in member order; raises the first failure when propagating."""
        return self._run(self.aget(timeout=timeout, propagate=propagate))  # type: ignore[no-any-return]

    join = get

    async def aget(self, timeout: float | None = None, propagate: bool = True) -> list[Any]:
        outcomes = await asyncio.gather(
            *(r.aget(timeout=timeout, propagate=False) for r in self.results)
        )
        if propagate:
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
        return list(outcomes)

    def __await__(self) -> Generator[Any, None, list[Any]]:
        return self.aget().__await__()

    def revoke(self, terminate: bool = False, **_: Any) -> None:
        self.app.control.revoke([r.id for r in self.results], terminate=terminate)

    def forget(self) -> None:
        for r in self.results:
            r.forget()

    def save(self) -> GroupResult:
        """Remember the member ids in the result store, for ``GroupResult.restore(id)``."""

        async def _save() -> None:
            store = await self.app.result_store()
            await store.save_group(self.id, [r.id for r in self.results])

        self._run(_save())
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
        return ((self.id, None), [r.as_tuple() for r in self.results])


ResultSet = GroupResult
