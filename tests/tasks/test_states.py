"""States (celeriac.states), progress with update_state, result.info, and app.backend."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from celeriac import Celery, states
from celeriac.exceptions import Ignore, TimeoutError

from ..unit.helpers import drain


def test_celerys_state_names_and_sets() -> None:
    assert (states.PENDING, states.STARTED, states.SUCCESS, states.FAILURE, states.RETRY, states.REVOKED) == (
        "PENDING", "STARTED", "SUCCESS", "FAILURE", "RETRY", "REVOKED")
    assert {"SUCCESS", "FAILURE", "REVOKED"} == states.READY_STATES
    assert {"FAILURE", "REVOKED"} == states.PROPAGATE_STATES
    assert {"RETRY", "FAILURE", "REVOKED"} == states.EXCEPTION_STATES
    assert "REJECTED" in states.UNREADY_STATES and states.IGNORED == "IGNORED"
    assert states.state("PROGRESS") > states.state(states.STARTED)
    assert states.state("PROGRESS") < states.state(states.SUCCESS)
    assert states.state(states.SUCCESS) > states.state(states.FAILURE)  # SUCCESS ranks first, as in Celery
    assert states.precedence(states.SUCCESS) < states.precedence(states.PENDING)


async def test_progress_state_and_meta(app: Celery) -> None:
    reached = threading.Event()
    release = threading.Event()

    @app.task(bind=True)
    def upload(self: Any, files: list[str]) -> int:
        for i, _ in enumerate(files):
            self.update_state(state="PROGRESS", meta={"current": i + 1, "total": len(files)})
        reached.set()
        release.wait(10)
        return len(files)

    result = upload.delay(["a", "b", "c"])
    worker = asyncio.create_task(drain(app))
    await asyncio.to_thread(reached.wait, 10)
    assert result.state == "PROGRESS" and not result.ready()
    assert result.info == {"current": 3, "total": 3}
    assert app.backend.get_task_meta(result.id)["status"] == "PROGRESS"
    with pytest.raises(TimeoutError):
        await result.aget(timeout=0.05)  # a custom state is not ready
    release.set()
    await worker
    assert result.get(timeout=5) == 3 and result.state == states.SUCCESS


async def test_async_progress_and_stored_success(app: Celery) -> None:
    @app.task(bind=True)
    async def tick(self: Any) -> None:
        await self.aupdate_state(state="PROGRESS", meta={"step": 1})
        raise Ignore()

    @app.task(bind=True)
    def manual(self: Any) -> None:
        if not self.request.called_directly:
            self.update_state(state=states.SUCCESS, meta=["tweet"])  # Celery's "store results manually"
        raise Ignore()

    ticked, stored = tick.delay(), manual.delay()
    await drain(app)
    assert ticked.state == "PROGRESS" and ticked.info == {"step": 1}
    assert stored.get(timeout=5) == ["tweet"] and stored.state == "SUCCESS"


async def test_failure_info_is_the_exception(backend_url: str) -> None:
    app = Celery("proj", broker=backend_url, task_track_started=True)

    @app.task
    def broken() -> None:
        raise LookupError("missing", 42)

    result = broken.delay()
    await drain(app)
    assert result.state == states.FAILURE and result.failed()
    assert isinstance(result.info, LookupError) and result.info.args == ("missing", 42)
    assert isinstance(result.result, LookupError)


async def test_started_meta_has_pid_and_hostname(backend_url: str) -> None:
    app = Celery("proj", broker=backend_url, task_track_started=True)
    reached, release = threading.Event(), threading.Event()

    @app.task
    def wait() -> None:
        reached.set()
        release.wait(10)

    result = wait.delay()
    worker = asyncio.create_task(drain(app))
    await asyncio.to_thread(reached.wait, 10)
    for _ in range(200):  # STARTED is written by the worker's flusher, soon after the start
        if result.state == states.STARTED:
            break
        await asyncio.sleep(0.01)
    assert result.state == states.STARTED
    assert set(result.info) == {"pid", "hostname"}
    release.set()
    await worker


async def test_backend_methods(app: Celery) -> None:
    backend = app.backend
    assert backend is app.backend and backend.ensure_chords_allowed() is None
    assert app.tasks is not None

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task
    def boom() -> None:
        raise ValueError("boom", 1)

    ok, bad = add.delay(1, 2), boom.delay()
    await drain(app)
    meta = backend.get_task_meta(ok.id)
    assert meta["status"] == "SUCCESS" and meta["result"] == 3 and meta["task_id"] == ok.id
    assert meta["date_done"] is not None and meta["traceback"] is None
    assert backend.get_state(bad.id) == "FAILURE" and backend.get_status(bad.id) == "FAILURE"
    assert isinstance(backend.get_result(bad.id), ValueError) and "boom" in (backend.get_traceback(bad.id) or "")
    assert backend.wait_for(ok.id, timeout=5)["result"] == 3
    assert backend.wait_for_pending(ok, timeout=5) == 3
    assert dict(backend.get_many([ok.id, bad.id], timeout=5))[ok.id]["result"] == 3
    assert backend.get_task_meta("unknown-id")["status"] == "PENDING"
    with pytest.raises(TimeoutError):
        backend.wait_for("unknown-id", timeout=0.05)

    backend.store_result("manual-1", {"x": 1}, states.SUCCESS)
    assert app.AsyncResult("manual-1").get(timeout=5) == {"x": 1}
    backend.mark_as_failure("manual-2", KeyError("k"))
    with pytest.raises(KeyError):
        app.AsyncResult("manual-2").get(timeout=5)
    backend.mark_as_started("manual-3", pid=1)
    assert app.AsyncResult("manual-3").info == {"pid": 1}
    backend.mark_as_revoked("manual-4", reason="no")
    assert app.AsyncResult("manual-4").state == states.REVOKED
    backend.forget(ok.id)
    assert backend.get_task_meta(ok.id)["status"] == "PENDING"
    assert add.backend is backend and backend.as_uri().split(":")[0] in ("memory", "sqlite", "redis", "postgresql")


def test_update_state_without_a_result_store_does_nothing() -> None:
    app = Celery("no-store", broker="memory://no-store", result_backend="disabled", task_always_eager=True)

    @app.task(bind=True)
    def progress(self: Any) -> str:
        self.update_state(state="PROGRESS", meta={"n": 1})
        return "done"

    assert progress.delay().get() == "done"
