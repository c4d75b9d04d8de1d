"""The worker command's process-wide set-up: its event loop and its log handlers."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import pytest

from celeriac.worker.cli import drop_duplicate_handlers, run_loop


def test_the_loop_runs_outside_the_uvloop_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without uvloop, exceptions raised in the worker's loop carry no ImportError as context."""
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop raises ImportError
    caught: list[BaseException] = []

    async def body() -> None:
        try:
            raise ValueError("in a task")
        except ValueError as exc:
            caught.append(exc)

    run_loop(body())
    assert caught and caught[0].__context__ is None


@pytest.fixture
def loggers() -> Iterator[tuple[logging.Logger, logging.Logger, io.StringIO]]:
    root = logging.getLogger()
    saved = root.handlers[:]
    stream = io.StringIO()
    root.handlers[:] = [logging.StreamHandler(stream)]
    framework = logging.getLogger("celeriac-test-framework")  # Django's "django" logger, say
    quiet = logging.getLogger("celeriac-test-quiet")
    quiet.propagate = False
    yield framework, quiet, stream
    root.handlers[:] = saved
    for made in (framework, quiet):
        made.handlers.clear()
        made.propagate = True


def test_a_second_handler_on_the_workers_stream_is_dropped(
        loggers: tuple[logging.Logger, logging.Logger, io.StringIO]) -> None:
    framework, quiet, stream = loggers
    duplicate = logging.StreamHandler(stream)  # as Django's console handler with DEBUG = True
    elsewhere = logging.StreamHandler(io.StringIO())
    framework.addHandler(duplicate)
    framework.addHandler(elsewhere)
    own = logging.StreamHandler(stream)
    quiet.addHandler(own)  # does not propagate: its own handler is its only one
    drop_duplicate_handlers()
    framework.warning("once")
    quiet.warning("kept")
    assert stream.getvalue().splitlines() == ["once", "kept"]
    assert duplicate not in framework.handlers and elsewhere in framework.handlers and own in quiet.handlers
