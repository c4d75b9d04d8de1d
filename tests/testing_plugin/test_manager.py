"""celeriac.contrib.testing.manager.Manager: Celery's integration-test helper, on a real worker."""

from __future__ import annotations

import threading
import time

import pytest

from celeriac import Celery
from celeriac.contrib.testing.manager import Manager, Sentinel, retry_over_time
from celeriac.contrib.testing.worker import start_worker
from celeriac.result import ResultSet

WAIT_S = 30.0


def test_wait_for_retries_until_the_event_then_returns_its_value() -> None:
    manager = Manager(Celery("proj", broker="memory://manager-wait", set_as_current=False))
    calls: list[int] = []

    def event() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise Sentinel()
        return "happened"

    assert manager.wait_for(event, (Sentinel,), interval_start=0.01, interval_step=0.01) == "happened"
    assert len(calls) == 3


def test_wait_for_gives_up_after_max_retries_with_the_last_error() -> None:
    manager = Manager(Celery("proj", broker="memory://manager-give-up", set_as_current=False))
    calls: list[int] = []

    def never() -> None:
        calls.append(1)
        raise Sentinel()

    with pytest.raises(Sentinel):
        manager.wait_for(never, (Sentinel,), max_retries=2, interval_start=0.01, interval_step=0.0)
    assert len(calls) == 3  # the first call and two retries


def test_ensure_not_for_a_while() -> None:
    manager = Manager(Celery("proj", broker="memory://manager-not", set_as_current=False))

    def never() -> None:
        raise Sentinel()

    manager.ensure_not_for_a_while(never, (Sentinel,), max_retries=2, interval_start=0.01)
    with pytest.raises(AssertionError, match="Should not have happened: it"):
        manager.ensure_not_for_a_while(lambda: True, (Sentinel,), desc="it", max_retries=2)


def test_retry_over_time_stops_at_its_timeout() -> None:
    started = time.monotonic()

    def never() -> None:
        raise Sentinel()

    with pytest.raises(Sentinel):
        retry_over_time(never, Sentinel, interval_start=0.05, interval_step=0.05, interval_max=0.1, timeout=0.3)
    assert time.monotonic() - started < 2


def test_join_assert_accepted_and_wait_until_idle_on_a_worker(backend_url: str) -> None:
    app = Celery("proj", broker=backend_url, set_as_current=False)
    release = threading.Event()

    @app.task(name="proj.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="proj.hold")
    def hold() -> str:
        release.wait(WAIT_S)
        return "released"

    with start_worker(app, pool="threads", concurrency=4, perform_ping_check=False):
        manager = Manager(app)
        one = add.delay(2, 3)
        manager.join(one, timeout=WAIT_S)  # waits (values go to join's callback, as in Celery)
        assert one.ready() and one.result == 5
        both = ResultSet([add.delay(1, 1), add.delay(2, 2)], app=app)
        manager.join(both, timeout=WAIT_S)
        assert both.ready() and [r.result for r in both.results] == [2, 4]

        held = hold.delay()
        manager.assert_accepted([held.id], max_retries=50)  # a worker reports it active
        assert manager.is_received([held.id])
        done = threading.Event()
        threading.Thread(target=lambda: (manager.wait_until_idle(), done.set()), daemon=True).start()
        assert not done.wait(0.5)  # still running a task: not idle
        release.set()
        assert done.wait(WAIT_S)
        assert held.get(timeout=WAIT_S) == "released"


def test_join_gives_up_on_missing_results() -> None:
    app = Celery("proj", broker="memory://manager-join-missing", set_as_current=False)
    manager = Manager(app, stdout=open("/dev/null", "w"))  # noqa: SIM115
    with pytest.raises(AssertionError, match="Missing task results"):
        manager.join(app.AsyncResult("never-sent"), timeout=0.05, max_retries=2)
