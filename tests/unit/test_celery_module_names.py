"""Every module Celery's own integration tests import exists under celeriac's name, and what
celeriac leaves out on purpose (stamping) says so when used, naming the differences page."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from celeriac import Celery, Signature, _state, current_app
from celeriac.exceptions import DIFFERENCES_PAGE, NotAvailable, TaskError


@pytest.mark.parametrize(("module", "names"), [
    ("celeriac", ["Signature", "Task", "chain", "chord", "group", "shared_task", "signature"]),
    ("celeriac.canvas", ["StampingVisitor", "signature"]),
    ("celeriac.backends.base", ["BaseKeyValueStoreBackend"]),
    ("celeriac.exceptions", ["ImproperlyConfigured", "TimeoutError", "SoftTimeLimitExceeded", "TaskRevokedError"]),
    ("celeriac.result", ["AsyncResult", "GroupResult", "ResultSet"]),
    ("celeriac.signals", ["before_task_publish", "task_received"]),
    ("celeriac.utils.log", ["get_task_logger"]),
    ("celeriac.utils.serialization", ["UnpickleableExceptionWrapper"]),
    ("celeriac.worker.state", ["revoked_stamps"]),
    ("celeriac.contrib.pytest", ["celery_app", "celery_session_worker"]),
    ("celeriac.contrib.testing.manager", ["Manager"]),
    ("celeriac.states", ["SUCCESS", "FAILURE"]),
])
def test_celerys_integration_suite_imports(module: str, names: list[str]) -> None:
    imported = importlib.import_module(module)
    assert [n for n in names if not hasattr(imported, n)] == []


def _stamp_entry_points(app: Celery) -> list[Any]:
    from celeriac.canvas import StampingVisitor

    class Monitoring(StampingVisitor):  # defining a visitor works (tasks modules do it at import)
        def on_signature(self, sig: Any, **headers: Any) -> dict[str, Any]:
            return {"monitoring_id": "x"}

    sig = Signature("proj.add", (1, 1), app=app)
    return [
        lambda: sig.stamp(visitor=Monitoring()),
        lambda: sig.stamp_links(Monitoring()),
        lambda: app.AsyncResult("some-id").revoke_by_stamped_headers({"monitoring_id": ["x"]}),
        lambda: app.control.revoke_by_stamped_headers({"monitoring_id": ["x"]}, reply=True),
        lambda: StampingVisitor().on_signature(sig),
    ]


def test_stamping_raises_not_available_naming_the_differences_page() -> None:
    app = Celery("proj", broker="memory://stamping", set_as_current=False)
    for use in _stamp_entry_points(app):
        with pytest.raises(NotAvailable) as raised:
            use()
        assert DIFFERENCES_PAGE in str(raised.value) and '"Stamping"' in str(raised.value)
        assert isinstance(raised.value, NotImplementedError)


def test_set_current_and_set_default() -> None:
    previous = _state.peek_current_app()
    try:
        app = Celery("proj", broker="memory://set-current", set_as_current=False)
        assert current_app() is not app
        app.set_current()
        assert current_app() is app
        other = Celery("other", broker="memory://set-default", set_as_current=False)
        other.set_default()
        assert current_app() is other
    finally:
        _state._current_app = previous


def test_unpickleable_exception_wrapper_is_what_get_raises_for_an_exception_it_cannot_rebuild() -> None:
    from celeriac.utils.serialization import UnpickleableExceptionWrapper, get_pickled_exception

    assert UnpickleableExceptionWrapper is TaskError
    wrapper = TaskError("builtins.ValueError", "bad", exc_args=("bad", 2))
    assert (wrapper.exc_cls_name, wrapper.exc_module, wrapper.exc_args) == ("ValueError", "builtins", ("bad", 2))
    restored = get_pickled_exception(wrapper)
    assert type(restored) is ValueError and restored.args == ("bad", 2)
    unknown = TaskError("nowhere.Missing", "gone")
    assert get_pickled_exception(unknown) is unknown


def test_no_celeriac_backend_is_a_celery_key_value_backend() -> None:
    from celeriac.backends.base import BaseKeyValueStoreBackend

    app = Celery("proj", broker="memory://kv", set_as_current=False)
    assert not isinstance(app.backend, BaseKeyValueStoreBackend)
    assert BaseKeyValueStoreBackend().get_key_for_group("g", ".j") == "celery-taskset-meta-g.j"


def test_worker_state_revoked_stamps_is_an_empty_mapping() -> None:
    from celeriac.worker import state

    assert state.revoked_stamps == {}
    state.revoked_stamps.clear()


def test_add_to_chord_raises_not_available_naming_the_differences_page() -> None:
    app = Celery("proj", broker="memory://add-to-chord", set_as_current=False)

    @app.task(name="proj.adds", bind=True)
    def adds(self: Any) -> None:
        self.add_to_chord(Signature("proj.other", app=app))

    with pytest.raises(NotAvailable, match=r"add_to_chord.*differences-from-celery\.md"):
        adds.apply(throw=True)
    with pytest.raises(NotAvailable, match=r"differences-from-celery\.md"):
        app.backend.add_to_chord("group-id", None)


@pytest.mark.parametrize(("given", "number"), [
    (None, None), ("SIGKILL", 9), ("KILL", 9), ("kill", 9), (9, 9), ("15", 15), ("SIGUSR1", 10),
])
def test_revoke_signal_names_as_celery_reads_them(given: Any, number: int | None) -> None:
    from celeriac.worker.control import signal_number

    assert signal_number(given) == number


def test_an_unknown_revoke_signal_is_refused() -> None:
    from celeriac.worker.control import signal_number

    with pytest.raises(ValueError, match="unknown signal 'SIGNOPE'"):
        signal_number("SIGNOPE")
