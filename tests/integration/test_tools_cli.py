"""The terminal tools through click's CliRunner: data that looks like rich markup, requeue reports."""

from __future__ import annotations

import json
import sys
import uuid

import pytest
from click.testing import CliRunner, Result

from celeriac import Celery
from celeriac._bridge import run_sync
from celeriac.cli import main
from celeriac.servers import OutgoingMessage
from celeriac.servers.memory.transport import MemoryBroker

app: Celery  # what -A names: a fresh app on a fresh memory:// broker per test

MARKUP = "[/x] [bold]not bold[/bold] [link=http://example.invalid]x[/link] \\[/x]"


@pytest.fixture
def url(monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"memory://cli-{uuid.uuid4().hex}"
    monkeypatch.setattr(sys.modules[__name__], "app", Celery("tools-cli-test", broker=name, backend=name),
                        raising=False)
    return name


def cli(url: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["-A", f"{__name__}:app", *args], env={"COLUMNS": "400"})


def dead_letter(url: str, task_id: str, reason: str, queue: str = "celery") -> None:
    async def run() -> None:
        broker = MemoryBroker(url)
        await broker.publish([OutgoingMessage(task_id, queue, b"{}")])
        [d] = await broker.reserve([queue], 1, lease_ms=60_000, worker_id="w", timeout_s=0)
        assert await broker.dead_letter(d, reason)

    run_sync(run())


def test_dlq_list_prints_ids_and_reasons_that_look_like_markup(url: str) -> None:
    dead_letter(url, f"id {MARKUP}", f"reason {MARKUP}", queue="q[/x]")
    result = cli(url, "dlq", "list")
    assert result.exit_code == 0, result.output
    assert f"id {MARKUP}" in result.output
    assert f"reason {MARKUP}" in result.output
    assert "q[/x]" in result.output


def test_dlq_list_shows_every_dead_letter_of_an_id(url: str) -> None:
    dead_letter(url, "twice", "first [/x] failure")
    dead_letter(url, "twice", "second [/x] failure")
    result = cli(url, "dlq", "list")
    assert result.exit_code == 0, result.output
    assert "first [/x] failure" in result.output and "second [/x] failure" in result.output
    assert "dead letters (2)" in result.output


def test_queues_table_prints_markup_like_names_as_they_are(url: str) -> None:
    async def publish() -> None:
        await MemoryBroker(url).publish([OutgoingMessage("t", "queue[/x]", b"{}")])

    run_sync(publish())
    result = cli(url, "queues")
    assert result.exit_code == 0, result.output
    assert "queue[/x]" in result.output


def test_dlq_requeue_names_each_skipped_id_and_why(url: str) -> None:
    dead_letter(url, "busy[/x]", "rejected")
    dead_letter(url, "free", "rejected")

    async def publish_again() -> None:
        await MemoryBroker(url).publish([OutgoingMessage("busy[/x]", "celery", b"{}")])

    run_sync(publish_again())
    result = cli(url, "dlq", "requeue", "busy[/x]", "free", "missing")
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines[0] == "requeued 1 messages: free"
    assert any(line.startswith("not requeued busy[/x]: a message with this id is scheduled, queued or running")
               and "dead letter is kept" in line for line in lines)
    assert "not requeued missing: no dead letter has this id" in lines
    listed = cli(url, "dlq", "list", "--json")
    assert [d["task_id"] for d in json.loads(listed.output)] == ["busy[/x]"]

    everything = cli(url, "dlq", "purge", "-f")
    assert everything.output.strip() == "deleted 1 dead letters"
    assert cli(url, "dlq", "requeue", "--all").output.strip() == "requeued 0 messages"
