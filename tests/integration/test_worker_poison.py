"""One bad message, argument or result never stalls, wedges or kills a worker (issue 10).

Each test runs a real worker in-process against every broker: the poison ends
dead-lettered or FAILURE with its reason, and every other task runs.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import pytest

from celeriac import Celery
from celeriac.servers.contracts import OutgoingMessage
from celeriac.worker import Worker
from celeriac.worker import loop as worker_loop

from ..unit.helpers import drain

POISON_BODIES = {
    "tag-fails-to-decode": b'{"id":"%s","task":"proj.echo","args":[{"__celeriac__":"datetime","v":"user input"}]}',
    "unknown-tag": b'{"id":"%s","task":"proj.echo","args":[{"__celeriac__":"nope","v":1}]}',
    "too-deep": b'{"id":"%s","task":"proj.echo","args":' + b"[" * 5000 + b"]" * 5000 + b"}",
    "not-json": b"\xff\xfe not json %s",
    "wrong-types": b'{"id":"%s","task":["proj.echo"],"args":{}}',
    "unknown-task": b'{"id":"%s","task":"proj.no_such_task"}',
    "id-mismatch": b'{"id":"someone-else","task":"proj.echo","args":["%s"]}',
}


@pytest.fixture
def app(backend_url: str) -> Celery:
    app = Celery("proj", broker=backend_url)

    @app.task(name="proj.echo")
    def echo(*args: Any, **kwargs: Any) -> Any:
        return [list(args), kwargs]

    return app


async def publish_raw(app: Celery, task_id: str, body: bytes) -> None:
    broker = (await app.clients()).broker
    await broker.publish([OutgoingMessage(task_id, "celery", body)])


async def dead_letter_reasons(app: Celery) -> dict[str, str]:
    broker = (await app.clients()).broker
    return {letter.task_id: letter.reason for letter in await broker.dead_letters(1000)}


async def test_each_undecodable_message_is_dead_lettered_alone(app: Celery) -> None:
    echo = app.tasks["proj.echo"]
    before = [echo.delay(i) for i in range(5)]
    for kind, body in POISON_BODIES.items():
        await publish_raw(app, f"poison-{kind}", body.replace(b"%s", f"poison-{kind}".encode()))
    after = [echo.delay(i) for i in range(5, 10)]
    await drain(app, concurrency=4, expect_dead_letters=True)
    assert [r.get(timeout=5) for r in before + after] == [[[i], {}] for i in range(10)]
    reasons = await dead_letter_reasons(app)
    assert set(reasons) == {f"poison-{kind}" for kind in POISON_BODIES}
    assert "user input" in reasons["poison-tag-fails-to-decode"]
    assert "not registered" in reasons["poison-unknown-task"].lower() or "unknown" in reasons["poison-unknown-task"]
    assert all(reasons.values())
    failed = app.AsyncResult("poison-not-json")
    assert failed.state == "FAILURE"


async def test_a_user_dict_shaped_like_the_tag_runs_as_sent(app: Celery) -> None:
    form = {"__celeriac__": "datetime", "v": "user input"}
    result = app.tasks["proj.echo"].delay(form, body=form)
    await drain(app)
    assert result.get(timeout=5) == [[form], {"body": form}]


async def test_results_and_errors_that_cannot_be_encoded_fail_only_their_task(app: Celery) -> None:
    @app.task
    def listdir_name() -> str:
        return "report-\udcff.pdf"  # what os.listdir returns for a name that is not UTF-8

    @app.task
    async def listdir_error() -> None:
        raise FileNotFoundError("no such file: report-\udcff.pdf")

    @app.task
    def nan_result() -> float:
        return float("nan")

    bad_value, bad_error, nan = listdir_name.delay(), listdir_error.delay(), nan_result.delay()
    later = [app.tasks["proj.echo"].delay(i) for i in range(5)]
    await drain(app)
    assert bad_value.state == "FAILURE"
    assert "not valid Unicode" in str(bad_value.result)
    assert bad_error.state == "FAILURE"
    assert isinstance(bad_error.result, FileNotFoundError)
    assert "report-\\udcff.pdf" in str(bad_error.result)
    assert str(nan.get(timeout=5)) == "nan"
    assert [r.get(timeout=5) for r in later] == [[[i], {}] for i in range(5)]


class Interrupt(BaseException):
    pass


async def test_base_exceptions_from_a_task_body_fail_that_task_only(app: Celery) -> None:
    @app.task
    def sync_exit() -> None:
        sys.exit(1)

    @app.task
    async def async_exit() -> None:
        raise SystemExit(3)

    @app.task
    def sync_interrupt() -> None:
        raise KeyboardInterrupt

    @app.task
    async def async_interrupt() -> None:
        raise KeyboardInterrupt

    @app.task
    async def custom_base() -> None:
        raise Interrupt("custom")

    @app.task
    async def self_cancelled() -> None:
        raise asyncio.CancelledError("raised by the body, not by the worker")

    poisons = [t.delay() for t in (sync_exit, async_exit, sync_interrupt, async_interrupt, custom_base,
                                   self_cancelled)]
    later = [app.tasks["proj.echo"].delay(i) for i in range(5)]
    worker = await drain(app)
    assert worker.exit_code == 0
    for result in poisons:
        assert result.state == "FAILURE", result
        assert result.traceback
    assert [r.get(timeout=5) for r in later] == [[[i], {}] for i in range(5)]


@pytest.mark.parametrize("backend_url", ["memory"], indirect=True)
async def test_a_fetch_loop_that_fails_stops_the_worker_with_an_error(
    app: Celery, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(self: Worker, deliveries: Any) -> None:
        raise RuntimeError("a bug in dispatch")

    monkeypatch.setattr(Worker, "_dispatch", broken)
    app.tasks["proj.echo"].delay(1)
    worker = Worker(app, handle_signals=False)
    with caplog.at_level(logging.CRITICAL, "celeriac.worker"):
        await asyncio.wait_for(worker.run(), 60)
    assert worker.exit_code == worker_loop.EXIT_SOFTWARE
    assert "the fetch loop failed" in caplog.text
    assert "a bug in dispatch" in caplog.text


@pytest.mark.parametrize("backend_url", ["memory"], indirect=True)
async def test_a_lease_keeper_that_dies_stops_the_worker_with_an_error(
    app: Celery, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from celeriac.worker.lease import LeaseKeeper

    async def broken(self: LeaseKeeper) -> None:
        raise RuntimeError("a bug in the keeper")

    monkeypatch.setattr(LeaseKeeper, "_keep", broken)
    worker = Worker(app, handle_signals=False)
    await asyncio.wait_for(worker.run(), 60)
    assert worker.exit_code == worker_loop.EXIT_SOFTWARE


@pytest.mark.parametrize("backend_url", ["memory", "sqlite"], indirect=True)
async def test_warm_shutdown_ends_although_acks_cannot_be_written(
    app: Celery, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(worker_loop, "SHUTDOWN_FLUSH_TIMEOUT_S", 0.5)
    broker = (await app.clients()).broker
    started = asyncio.Event()

    async def ack_fails(*args: Any, **kwargs: Any) -> list[str]:
        started.set()
        raise ConnectionError("broker gone")

    monkeypatch.setattr(broker, "ack", ack_fails)
    app.tasks["proj.echo"].delay(1)
    worker = Worker(app, handle_signals=False)
    running = asyncio.create_task(worker.run())
    await started.wait()
    worker.stop()
    with caplog.at_level(logging.ERROR, "celeriac.worker"):
        await asyncio.wait_for(running, 60)
    assert "could not write acks and results" in caplog.text


async def test_stop_iteration_and_generator_exit_from_a_sync_body_fail_that_task(app: Celery) -> None:
    @app.task
    def stops() -> None:
        raise StopIteration("asyncio futures refuse this one")

    @app.task
    def exits_generator() -> None:
        raise GeneratorExit(None)

    poisons = [stops.delay(), exits_generator.delay()]
    later = app.tasks["proj.echo"].delay("after")
    worker = await drain(app)
    assert worker.exit_code == 0
    assert [r.state for r in poisons] == ["FAILURE", "FAILURE"]
    assert later.get(timeout=5) == [["after"], {}]
