"""celeriac status / inspect / control: Celery's output, --json, and the exit status when nobody answers."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result

from celeriac import Celery
from celeriac.cli import main
from celeriac.contrib.testing.worker import start_worker

app = Celery("cli-control", broker=f"memory://cli-control-{uuid.uuid4().hex}", worker_heartbeat_seconds=0.2,
             set_as_current=False)


@app.task(name="proj.mul")
def mul(x: int, y: int) -> int:
    return x * y


@pytest.fixture(scope="module")
def worker() -> Iterator[None]:
    with start_worker(app, hostname="cli@test", pool="threads"):
        yield


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, ["-A", f"{__name__}:app", *args])


def test_status_lists_the_nodes_online(worker: None) -> None:
    result = cli("status", "-t", "30")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["->  cli@test: OK", "", "1 node online."]
    as_json = cli("status", "-t", "30", "--json")
    assert json.loads(as_json.output) == {"cli@test": {"ok": "pong"}}


def test_inspect_prints_each_reply_as_celery_does(worker: None) -> None:
    ping = cli("inspect", "ping", "-t", "30")
    assert ping.exit_code == 0, ping.output
    assert ping.output.splitlines() == ["->  cli@test: OK", "        pong", "", "1 node online."]
    active = cli("inspect", "active", "-t", "30")
    assert active.output.splitlines()[:2] == ["->  cli@test: OK", "    - empty -"]
    registered = cli("inspect", "registered", "-t", "30")
    assert "    * proj.mul" in registered.output.splitlines()
    stats = cli("inspect", "stats", "-t", "30", "--json")
    assert json.loads(stats.output)["cli@test"]["pool"]["max-concurrency"] >= 1
    for command in ("reserved", "scheduled", "active_queues", "revoked", "clock"):
        result = cli("inspect", command, "-t", "30", "--json")
        assert result.exit_code == 0, (command, result.output)
        assert "cli@test" in json.loads(result.output)


def test_control_commands_reply(worker: None) -> None:
    result = cli("control", "rate_limit", "proj.mul", "10/m", "-t", "30")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["->  cli@test: OK", "        new rate limit set successfully"]
    assert mul.rate_limit == "10/m"
    result = cli("control", "rate_limit", "proj.mul", "0", "-t", "30", "--json")
    assert json.loads(result.output) == [{"cli@test": {"ok": "rate limit disabled successfully"}}]
    missing = cli("control", "rate_limit", "proj.mul")
    assert missing.exit_code == 2 and "takes arguments" in missing.output


def test_nobody_answering_exits_69(worker: None) -> None:
    result = cli("status", "-t", "0.2", "-d", "nobody@nowhere")
    assert result.exit_code == 69
    assert "No nodes replied within time constraint" in result.output
    result = cli("inspect", "active", "-t", "0.2", "-d", "nobody@nowhere")
    assert result.exit_code == 69
