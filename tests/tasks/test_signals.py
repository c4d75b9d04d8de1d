"""The signals a project connects to, sent with Celery's arguments (docs/api.md#signals)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from celeriac import Celery, signals
from celeriac.servers import OutgoingMessage
from celeriac.signals import Signal

from ..unit.helpers import drain


@contextmanager
def connected(*pairs: tuple[Signal, Any]) -> Iterator[None]:
    for signal, receiver in pairs:
        signal.connect(receiver)
    try:
        yield
    finally:
        for signal, receiver in pairs:
            signal.disconnect(receiver)


async def test_publish_signals_and_header_changes(app: Celery) -> None:
    seen: list[tuple[str, Any]] = []

    def before(sender: Any, body: Any, exchange: Any, routing_key: str, headers: dict[str, Any],
               properties: Any, declare: Any, retry_policy: Any, **_: Any) -> None:
        seen.append(("before", (sender, headers["id"], headers["task"], routing_key, body[0], body[1])))
        headers["x-trace"] = "abc"  # "headers (can be modified)"

    def after(sender: Any, headers: dict[str, Any], body: Any, exchange: Any, routing_key: str, **_: Any) -> None:
        seen.append(("after", (sender, headers["id"], headers.get("x-trace"))))

    @app.task(bind=True)
    def traced(self: Any, x: int) -> Any:
        return self.request.headers.get("x-trace")

    with connected((signals.before_task_publish, before), (signals.after_task_publish, after)):
        result = traced.delay(5)
    await drain(app)
    assert seen == [("before", (traced.name, result.id, traced.name, "celery", [5], {})),
                    ("after", (traced.name, result.id, "abc"))]
    assert result.get(timeout=5) == "abc"


async def test_task_signals_in_the_worker(app: Celery) -> None:
    seen: list[tuple[str, Any]] = []

    @app.task(bind=True, max_retries=1, default_retry_delay=0)
    def flaky(self: Any) -> int:
        if not self.request.retries:
            raise self.retry(exc=KeyError("again"))
        return 1

    @app.task
    def broken() -> None:
        raise ValueError("no")

    def received(sender: Any, request: Any, **_: Any) -> None:
        seen.append(("received", request.task))

    def postrun(sender: Any, task_id: str, task: Any, args: Any, kwargs: Any, retval: Any, state: str,
                **_: Any) -> None:
        seen.append(("postrun", (task.name, state, retval if state == "SUCCESS" else type(retval).__name__)))

    def success(sender: Any, result: Any, **_: Any) -> None:
        seen.append(("success", (sender.name, result, threading.current_thread().name.startswith("celeriac-task"))))

    def failure(sender: Any, task_id: str, exception: BaseException, args: Any, kwargs: Any, traceback: Any,
                einfo: Any, **_: Any) -> None:
        seen.append(("failure", (type(exception).__name__, traceback is not None, "ValueError" in str(einfo))))

    def retry(sender: Any, request: Any, reason: Any, einfo: Any, **_: Any) -> None:
        seen.append(("retry", (request.id, type(reason).__name__)))

    with connected((signals.task_received, received), (signals.task_postrun, postrun),
                   (signals.task_success, success), (signals.task_failure, failure), (signals.task_retry, retry)):
        ok = flaky.delay()
        broken.delay()
        await drain(app)
        await drain(app)
    assert ok.get(timeout=5) == 1
    assert ("received", flaky.name) in seen and ("received", broken.name) in seen
    assert ("postrun", (flaky.name, "RETRY", "KeyError")) in seen
    assert ("postrun", (flaky.name, "SUCCESS", 1)) in seen
    assert ("postrun", (broken.name, "FAILURE", "ValueError")) in seen
    assert ("success", (flaky.name, 1, True)) in seen
    assert ("failure", ("ValueError", True, True)) in seen
    assert ("retry", (ok.id, "KeyError")) in seen


async def test_revoked_unknown_and_rejected(app: Celery) -> None:
    seen: list[tuple[str, Any]] = []

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    def revoked(sender: Any, request: Any, terminated: bool, signum: Any, expired: bool, **_: Any) -> None:
        seen.append(("revoked", (sender.name, request.id, terminated, expired)))

    def unknown(sender: Any, name: str, id: str, message: Any, exc: BaseException, **_: Any) -> None:
        seen.append(("unknown", (name, id, type(exc).__name__)))

    def rejected(sender: Any, message: Any, exc: BaseException, **_: Any) -> None:
        seen.append(("rejected", message.task_id))

    cancelled = add.delay(1, 1)
    app.control.revoke(cancelled.id)
    expired = add.apply_async((1, 1), expires=-1)
    nobody = app.send_task("nobody.knows.this")
    await app.publish([OutgoingMessage("garbled-1", "celery", b"not a message")])
    with connected((signals.task_revoked, revoked), (signals.task_unknown, unknown),
                   (signals.task_rejected, rejected)):
        await drain(app, expect_dead_letters=True)
    assert ("revoked", (add.name, cancelled.id, False, False)) in seen
    assert ("revoked", (add.name, expired.id, False, True)) in seen
    assert ("unknown", ("nobody.knows.this", nobody.id, "NotRegistered")) in seen
    assert ("rejected", "garbled-1") in seen


async def test_worker_signals_in_order(app: Celery) -> None:
    seen: list[str] = []
    names = ["celeryd_init", "worker_init", "celeryd_after_setup", "worker_process_init", "worker_ready",
             "worker_shutting_down", "worker_process_shutdown", "worker_shutdown"]
    def recorder(name: str) -> Any:
        return lambda sender, **_: seen.append(name)

    receivers = [(getattr(signals, name), recorder(name)) for name in names]
    with connected(*receivers):
        await drain(app)
    assert seen == names


def test_sender_filter_and_dispatch_uid() -> None:
    app = Celery("filters", broker="memory://filters")

    @app.task
    def first() -> int:
        return 1

    @app.task
    def second() -> int:
        return 2

    seen: list[str] = []
    before = len(signals.task_prerun._receivers)  # receivers other tests left connected are not ours to judge
    by_task = signals.task_success.connect(lambda sender, **_: seen.append(f"only {sender.name}"), sender=first)
    named = signals.after_task_publish.connect(lambda sender, **_: seen.append(f"published {sender}"),
                                               sender=second.name)
    signals.task_prerun.connect(lambda sender, **_: seen.append("old"), dispatch_uid="uid")
    signals.task_prerun.connect(lambda sender, **_: seen.append("new"), dispatch_uid="uid")
    try:
        first.apply()
        second.apply()
        second.delay()
        first.delay()
    finally:
        signals.task_success.disconnect(by_task)
        signals.after_task_publish.disconnect(named)
        signals.task_prerun.disconnect(dispatch_uid="uid")
    assert seen == ["new", f"only {first.name}", "new", f"published {second.name}"]
    assert len(signals.task_prerun._receivers) == before  # the one "uid" receiver is gone


def test_import_modules_signal() -> None:
    app = Celery("imports", broker="memory://imports")
    seen: list[Any] = []
    with connected((signals.import_modules, lambda sender, **_: seen.append(sender))):
        app.import_default_modules()
    assert seen == [app]


@pytest.fixture
def clean_logging() -> Iterator[None]:
    root, task_logger = logging.getLogger(), logging.getLogger("celery.task")
    saved = (root.handlers[:], root.level, task_logger.handlers[:], task_logger.level, task_logger.propagate)
    yield
    root.handlers[:], task_logger.handlers[:] = saved[0], saved[2]
    root.setLevel(saved[1])
    task_logger.setLevel(saved[3])
    task_logger.propagate = saved[4]


def test_logging_signals(clean_logging: None) -> None:
    from celeriac.utils.log import setup_logging

    seen: list[tuple[str, Any]] = []

    def after_logger(sender: Any, logger: logging.Logger, loglevel: int, logfile: Any, format: str,
                     colorize: bool, **_: Any) -> None:
        seen.append(("after_setup_logger", logger.name))

    def after_task_logger(sender: Any, logger: logging.Logger, loglevel: int, **_: Any) -> None:
        seen.append(("after_setup_task_logger", logger.name))

    with connected((signals.after_setup_logger, after_logger), (signals.after_setup_task_logger, after_task_logger)):
        assert setup_logging("INFO") is True
    assert seen == [("after_setup_logger", "root"), ("after_setup_task_logger", "celery.task")]

    handlers = logging.getLogger().handlers[:]
    with connected((signals.setup_logging, lambda sender, loglevel, **_: seen.append(("setup_logging", loglevel)))):
        assert setup_logging("DEBUG") is False  # a receiver takes over: nothing is configured
    assert seen[-1] == ("setup_logging", logging.DEBUG) and logging.getLogger().handlers == handlers
