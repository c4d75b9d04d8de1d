"""``app.backend``: the result store, with the methods Celery code calls on a result backend.

Celery projects and test helpers reach results through ``app.backend`` (``self.backend``
in a task): ``get_task_meta``, ``store_result``, ``mark_as_*``, ``forget``, ``wait_for``,
``ensure_chords_allowed``. Here they are thin calls on the app's result store
(``servers/contracts.py``'s ``ResultStore``), each with an ``a``-prefixed async twin
where it does I/O. Meta dicts have Celery's keys: ``task_id``, ``status``, ``result``,
``traceback``, ``children``, ``date_done``, and with ``result_extended`` ``name``,
``args``, ``kwargs``, ``worker``, ``retries``, ``queue``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ._bridge import run_sync
from .exceptions import ADD_TO_CHORD_SECTION, NotAvailable, TaskRevokedError, TimeoutError
from .message import FAILURE, PENDING, READY_STATES, RETRY, REVOKED, STARTED, SUCCESS, ResultRecord
from .serialization import from_wire

if TYPE_CHECKING:
    from .app import Celery
    from .context import Request
    from .result import AsyncResult
    from .servers.contracts import ResultStore


class ResultBackend:
    """The app's result store under Celery's backend API; ``app.backend``."""

    supports_native_join = True
    supports_autoexpire = True
    persistent = True
    is_async = False

    def __init__(self, app: Celery) -> None:
        self.app = app

    def __repr__(self) -> str:
        return f"<ResultBackend: {self.url}>"

    @property
    def url(self) -> str | None:
        return self.app.result_backend_url()

    def as_uri(self, include_password: bool = False) -> str:
        from .servers import hide_password

        url = self.url or "disabled://"
        return url if include_password else hide_password(url)

    @property
    def expires(self) -> float | None:
        return self.app.settings.result_expires

    async def _store(self) -> ResultStore:
        return await self.app.result_store()

    def _has_store(self) -> bool:
        return self.url is not None

    # --- what Celery's helpers check --------------------------------------------------

    def ensure_chords_allowed(self) -> None:
        """Chords work with every result store here: nothing to refuse."""

    def cleanup(self) -> None:
        """Expired results go by themselves (``result_expires``): nothing to do."""

    def process_cleanup(self) -> None:
        """Nothing to close after a task here."""

    # --- reading ----------------------------------------------------------------------

    async def aget_task_meta(self, task_id: str, cache: bool = True) -> dict[str, Any]:
        record = await (await self._store()).fetch(task_id)
        return meta_of(task_id, record)

    def get_task_meta(self, task_id: str, cache: bool = True) -> dict[str, Any]:
        """``{"task_id", "status", "result", "traceback", "children", "date_done", ...}``; PENDING if unknown."""
        return run_sync(self.aget_task_meta(task_id, cache))

    def get_state(self, task_id: str) -> str:
        return str(self.get_task_meta(task_id)["status"])

    get_status = get_state

    def get_result(self, task_id: str) -> Any:
        return self.get_task_meta(task_id)["result"]

    def get_traceback(self, task_id: str) -> str | None:
        tb: str | None = self.get_task_meta(task_id)["traceback"]
        return tb

    def get_children(self, task_id: str) -> list[Any] | None:
        children: list[Any] | None = self.get_task_meta(task_id).get("children")
        return children

    def get_many(self, task_ids: Iterable[str], timeout: float | None = None, interval: float = 0.5,
                 **_: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(task_id, meta)`` for each id as it becomes ready (in the order they do)."""
        pending = list(dict.fromkeys(task_ids))
        deadline = None if timeout is None else time.monotonic() + timeout
        while pending:
            found = run_sync(self._afetch_many(pending))
            ready = [i for i in pending if i in found and found[i].state in READY_STATES]
            for task_id in ready:
                yield task_id, meta_of(task_id, found[task_id])
            pending = [i for i in pending if i not in ready]
            if not pending:
                return
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"{len(pending)} results were not ready within {timeout}s")
            time.sleep(min(interval, 0.1))

    async def _afetch_many(self, task_ids: list[str]) -> dict[str, ResultRecord]:
        return await (await self._store()).fetch_many(task_ids)

    # --- waiting ----------------------------------------------------------------------

    async def await_for(self, task_id: str, timeout: float | None = None) -> dict[str, Any]:
        record = await (await self._store()).wait_ready(task_id, timeout)
        if record is None or record.state not in READY_STATES:
            raise TimeoutError(f"task {task_id} did not finish within {timeout}s")
        return meta_of(task_id, record)

    def wait_for(self, task_id: str, timeout: float | None = None, interval: float = 0.5, no_ack: bool = True,
                 on_interval: Any = None) -> dict[str, Any]:
        """Wait until the task is ready and return its meta; ``TimeoutError`` past ``timeout``."""
        return run_sync(self.await_for(task_id, timeout))

    def wait_for_pending(self, result: AsyncResult[Any], timeout: float | None = None, interval: float = 0.5,
                         no_ack: bool = True, on_interval: Any = None, callback: Any = None,
                         propagate: bool = True, **_: Any) -> Any:
        """Wait for ``result`` and return its value (its exception raised, with ``propagate``)."""
        return result.get(timeout=timeout, propagate=propagate)

    # --- writing ----------------------------------------------------------------------

    async def astore_result(self, task_id: str, result: Any, state: str, traceback: str | None = None,
                            request: Request | None = None, **_: Any) -> Any:
        from .task import outcome_record

        token = 0
        name = None
        if request is not None and request.id == task_id:
            token, name = request.delivery_count, request.task
        if isinstance(result, BaseException):
            record = outcome_record(task_id, state, name=name, exc=result, tb=traceback, token=token)
        elif state in (FAILURE, RETRY, REVOKED) and isinstance(result, dict) and "exc_type" in result:
            record = ResultRecord(task_id=task_id, state=state, name=name, exc_type=str(result["exc_type"]),
                                  exc_message=str(result.get("exc_message", "")), traceback=traceback,
                                  fencing_token=token)
        else:
            record = outcome_record(task_id, state, name=name, value=result, tb=traceback, token=token)
        if request is not None and request.id == task_id:
            record.retries, record.worker = request.retries, request.hostname
            record.parent_id, record.group_id = request.parent_id, request.group
        await (await self._store()).store([record])
        return result

    def store_result(self, task_id: str, result: Any, state: str, traceback: str | None = None,
                     request: Request | None = None, **kwargs: Any) -> Any:
        """Write ``state`` for ``task_id``: ``result`` is the value (SUCCESS), the exception
        (FAILURE, RETRY, REVOKED) or the meta of any other state. With the running task's
        ``request`` the write carries its fencing token, so a later delivery's writes win.
        Without a result store (eager mode) it does nothing, as Celery's disabled backend.
        """
        if not self._has_store():
            return result
        return run_sync(self.astore_result(task_id, result, state, traceback, request, **kwargs))

    def mark_as_started(self, task_id: str, **meta: Any) -> Any:
        return self.store_result(task_id, meta, STARTED)

    def mark_as_done(self, task_id: str, result: Any, request: Request | None = None, **_: Any) -> Any:
        return self.store_result(task_id, result, SUCCESS, request=request)

    def mark_as_failure(self, task_id: str, exc: BaseException, traceback: str | None = None,
                        request: Request | None = None, **_: Any) -> Any:
        return self.store_result(task_id, exc, FAILURE, traceback=traceback, request=request)

    def mark_as_retry(self, task_id: str, exc: BaseException, traceback: str | None = None,
                      request: Request | None = None, **_: Any) -> Any:
        return self.store_result(task_id, exc, RETRY, traceback=traceback, request=request)

    def mark_as_revoked(self, task_id: str, reason: str = "", request: Request | None = None, **_: Any) -> Any:
        return self.store_result(task_id, TaskRevokedError(reason), REVOKED, request=request)

    async def aforget(self, task_id: str) -> None:
        await (await self._store()).forget(task_id)

    def forget(self, task_id: str) -> None:
        run_sync(self.aforget(task_id))

    # --- groups -----------------------------------------------------------------------

    def save_group(self, group_id: str, result: Any) -> Any:
        member_ids = [str(getattr(r, "id", r)) for r in getattr(result, "results", result)]

        async def save() -> None:
            await (await self._store()).save_group(group_id, member_ids)

        run_sync(save())
        return result

    def restore_group(self, group_id: str, cache: bool = True) -> Any:
        from .result import GroupResult

        return GroupResult.restore(group_id, app=self.app)

    def add_to_chord(self, group_id: str, result: Any) -> None:
        raise NotAvailable("backend.add_to_chord()", "a chord's header is fixed when it is sent; put the task "
                           "in the header, or chain a second chord", ADD_TO_CHORD_SECTION)


def meta_of(task_id: str, record: ResultRecord | None) -> dict[str, Any]:
    """Celery's meta dict for a stored record (``status`` PENDING when there is none)."""
    if record is None:
        return {"task_id": task_id, "status": PENDING, "result": None, "traceback": None, "children": [],
                "date_done": None}
    from .result import AsyncResult, exception_from_record

    if record.state == SUCCESS:
        value = from_wire(record.result)
    elif record.exc_type is not None or record.state in (FAILURE, RETRY, REVOKED):
        value = exception_from_record(record)
    else:
        value = from_wire(record.result)
    date_done = None
    if record.date_done_ms is not None:
        date_done = dt.datetime.fromtimestamp(record.date_done_ms / 1000, dt.UTC).replace(tzinfo=None)
    meta: dict[str, Any] = {
        "task_id": task_id, "status": record.state, "result": value, "traceback": record.traceback,
        "children": [AsyncResult(child) for child in record.children], "date_done": date_done,
        "name": record.name, "retries": record.retries, "worker": record.worker,
        "parent_id": record.parent_id, "group_id": record.group_id,
    }
    if record.args is not None:
        meta["args"] = from_wire(record.args)
    if record.kwargs is not None:
        meta["kwargs"] = from_wire(record.kwargs)
    return meta
