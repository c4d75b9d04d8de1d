"""The blocking app.control API against a worker in a thread (start_worker), on every broker."""

from __future__ import annotations

from celeriac import Celery
from celeriac.contrib.testing.worker import start_worker

WAIT_S = 30.0  # an upper bound for replies, never a measurement


def _ours(names: list[str]) -> list[str]:
    return [name for name in names if name.startswith("proj.")]


def test_control_and_inspect_from_sync_code(backend_url: str) -> None:
    app = Celery("proj", broker=backend_url, worker_heartbeat_seconds=0.2, set_as_current=False)

    @app.task(name="proj.add")
    def add(x: int, y: int) -> int:
        return x + y

    with start_worker(app, hostname="sync@test", pool="threads", concurrency=2) as worker:
        assert app.control.ping(timeout=WAIT_S) == [{"sync@test": {"ok": "pong"}}]
        inspect = app.control.inspect(timeout=WAIT_S)
        assert inspect.ping() == {"sync@test": {"ok": "pong"}}
        assert inspect.active() == {"sync@test": []}
        assert inspect.reserved() == {"sync@test": []}
        assert inspect.scheduled() == {"sync@test": []}
        assert "proj.add" in inspect.registered()["sync@test"]
        # (shared tasks that other tests defined join every app, as in Celery: look at ours only)
        assert _ours(inspect.registered("rate_limit")["sync@test"]) == ["proj.add"]  # no attribute set: the bare name
        assert inspect.stats()["sync@test"]["pool"]["max-concurrency"] == 2
        assert [q["name"] for q in inspect.active_queues()["sync@test"]] == ["celery"]
        assert inspect.clock()["sync@test"]["clock"] > 0
        assert inspect.conf()["sync@test"]["worker_heartbeat_seconds"] == 0.2
        assert "ok" in inspect.report()["sync@test"]

        assert app.control.rate_limit("proj.add", "10/m", reply=True, timeout=WAIT_S) == [
            {"sync@test": {"ok": "new rate limit set successfully"}}]
        assert _ours(inspect.registered("rate_limit")["sync@test"]) == ["proj.add [rate_limit=10/m]"]
        assert app.control.rate_limit("proj.add", 0, reply=True, timeout=WAIT_S) == [
            {"sync@test": {"ok": "rate limit disabled successfully"}}]
        assert add.rate_limit is None
        assert app.control.time_limit("proj.add", soft=5, hard=10, reply=True, timeout=WAIT_S) == [
            {"sync@test": {"ok": "time limits set successfully"}}]
        assert (add.time_limit, add.soft_time_limit) == (10, 5)
        assert add.delay(2, 3).get(timeout=WAIT_S) == 5

        assert app.control.add_consumer("extra", reply=True, timeout=WAIT_S) == [
            {"sync@test": {"ok": "add consumer extra"}}]
        assert add.apply_async((4, 4), queue="extra").get(timeout=WAIT_S) == 8
        assert app.control.cancel_consumer("extra", reply=True, timeout=WAIT_S) == [
            {"sync@test": {"ok": "no longer consuming from extra"}}]
        assert [q["name"] for q in inspect.active_queues()["sync@test"]] == ["celery"]

        add.apply_async((1, 1), queue="nobody-reads-this")
        assert app.control.purge() >= 1
        assert app.control.purge() == 0

        revoked = add.apply_async((1, 2), countdown=3600)
        revoked.revoke()
        assert revoked.id in inspect.revoked()["sync@test"]

        assert app.control.shutdown(reply=True, timeout=WAIT_S) == [{"sync@test": {"ok": "shutting down"}}]
        assert worker._thread is not None
        worker._thread.join(WAIT_S)
        assert not worker._thread.is_alive()
    assert app.control.ping(timeout=0.2) == []
