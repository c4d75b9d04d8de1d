"""Terminal tools: ``celeriac dlq``, ``purge``, ``queues``, ``call``, ``result``.

Each prints a readable table (rich) or, with ``--json``, one JSON document for scripts.
Every table cell that holds data from outside (task ids, queue names, reasons, worker
names) is a ``rich.text.Text``, never markup, so a ``[/x]`` in it is printed as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import Coroutine
from typing import Any, TypeVar

import click

from . import ops
from ._bridge import run_sync
from .events import decode_event
from .loading import load_app
from .servers.contracts import SKIPPED_NOT_FOUND, SKIPPED_PENDING

T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return run_sync(coro)


def _app(ctx: click.Context) -> Any:
    return load_app(ctx)


@click.group("dlq")
def dlq() -> None:
    """The dead-letter queue: messages that could not be run, with the reason."""


@dlq.command("list")
@click.option("--limit", default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def dlq_list(ctx: click.Context, limit: int, as_json: bool) -> None:
    app = _app(ctx)

    letters = _run(ops.dead_letters(app, limit))
    if as_json:
        click.echo(json.dumps([{"task_id": d.task_id, "queue": d.queue, "reason": d.reason,
                                "failed_at_ms": d.failed_at_ms, "delivery_count": d.delivery_count,
                                "priority": d.priority,
                                "body": d.body.decode(errors="replace")} for d in letters]))
        return
    from rich.console import Console  # rich only for a table: --json and the other commands start without it
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"dead letters ({len(letters)})")
    for column in ("task id", "queue", "failed at (UTC)", "deliveries", "reason"):
        table.add_column(column, justify="right" if column == "deliveries" else "left")
    for d in letters:
        when = dt.datetime.fromtimestamp(d.failed_at_ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(Text(d.task_id), Text(d.queue), when, str(d.delivery_count), Text(d.reason))
    Console().print(table)


@dlq.command("requeue")
@click.argument("task_ids", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Requeue every task id that has a dead letter.")
@click.pass_context
def dlq_requeue(ctx: click.Context, task_ids: tuple[str, ...], everything: bool) -> None:
    """Put dead letters back on their queue (per task id, its newest one).

    A task id with a message still scheduled, queued or running is skipped and keeps its
    dead letter; each skipped id is named with the reason, and the exit status is 1.
    """
    if not task_ids and not everything:
        raise click.UsageError("name task ids to requeue, or pass --all")
    app = _app(ctx)

    explained = {
        SKIPPED_PENDING: "a message with this id is scheduled, queued or running, so its dead letter "
                         "is kept (requeue it once that message is done, or purge it)",
        SKIPPED_NOT_FOUND: "no dead letter has this id",
    }
    outcome = _run(ops.requeue_dead_letters(app, None if everything else list(task_ids)))
    done = outcome.requeued
    click.echo(f"requeued {len(done)} messages" + (f": {', '.join(done)}" if done and not everything else ""))
    for task_id, why in outcome.skipped.items():
        click.echo(f"not requeued {task_id}: {explained.get(why, why)}")
    if outcome.skipped:
        ctx.exit(1)


@dlq.command("purge")
@click.option("-f", "--force", is_flag=True, help="Do not ask.")
@click.pass_context
def dlq_purge(ctx: click.Context, force: bool) -> None:
    if not force:
        click.confirm("Delete every dead letter?", abort=True)
    app = _app(ctx)

    click.echo(f"deleted {_run(ops.purge_dead_letters(app))} dead letters")


@click.command("purge")
@click.option("-Q", "--queues", default=None, help="Comma-separated queues (default: the default queue).")
@click.option("-f", "--force", is_flag=True, help="Do not ask.")
@click.pass_context
def purge(ctx: click.Context, queues: str | None, force: bool) -> None:
    """Delete every waiting message of the queues (running ones are left alone)."""
    app = _app(ctx)
    names = queues.split(",") if queues else [app.settings.task_default_queue]
    if not force:
        click.confirm(f"Delete every waiting message in {', '.join(names)}?", abort=True)

    click.echo(f"purged {_run(ops.purge_queues(app, names))} messages from {', '.join(names)}")


@click.command("queues")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def queues(ctx: click.Context, as_json: bool) -> None:
    """Waiting messages per queue (queued and scheduled)."""
    app = _app(ctx)

    depths = _run(ops.queue_depths(app))
    if as_json:
        click.echo(json.dumps(depths))
        return
    from rich.console import Console  # rich only for a table: --json and the other commands start without it
    from rich.table import Table
    from rich.text import Text

    table = Table(title="queues")
    table.add_column("queue")
    table.add_column("waiting", justify="right")
    for name, count in sorted(depths.items()):
        table.add_row(Text(name), str(count))
    Console().print(table)


@click.command("call")
@click.argument("name")
@click.option("-a", "--args", "args_json", default="[]", help="Positional arguments as JSON.")
@click.option("-k", "--kwargs", "kwargs_json", default="{}", help="Keyword arguments as JSON.")
@click.option("--countdown", type=float, default=None)
@click.option("-Q", "--queue", default=None)
@click.pass_context
def call(ctx: click.Context, name: str, args_json: str, kwargs_json: str, countdown: float | None,
         queue: str | None) -> None:
    """Send a task by name and print its id."""
    app = _app(ctx)
    try:
        args, kwargs = json.loads(args_json), json.loads(kwargs_json)
    except json.JSONDecodeError as exc:
        raise click.UsageError(f"--args/--kwargs must be JSON: {exc}") from exc
    result = app.send_task(name, args, kwargs, countdown=countdown, queue=queue)
    click.echo(result.id)


@click.command("result")
@click.argument("task_id")
@click.option("--wait", "timeout", type=float, default=None, help="Wait up to this many seconds.")
@click.pass_context
def result(ctx: click.Context, task_id: str, timeout: float | None) -> None:
    """Print a task's state and result."""
    app = _app(ctx)
    res = app.AsyncResult(task_id)
    if timeout is not None:
        with contextlib.suppress(Exception):
            res.get(timeout=timeout, propagate=False)
    click.echo(f"{res.state}: {res.result!r}")




@click.command("events")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new events.")
@click.option("-n", "--limit", default=50, show_default=True, help="How many recent events to show first.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def events(ctx: click.Context, follow: bool, limit: int, as_json: bool) -> None:
    """Show the event log: task outcomes and worker heartbeats."""
    app = _app(ctx)

    async def run() -> None:
        batch = await ops.read_events(app, None, limit)
        while True:
            for _, raw in batch:
                event = decode_event(raw)
                if as_json:
                    click.echo(raw.decode())
                else:
                    when = dt.datetime.fromtimestamp(event.ts).strftime("%H:%M:%S.%f")[:-3]
                    what = f"{event.name}[{event.task_id}]" if event.task_id else f"held={len(event.held or [])}"
                    extra = f" {event.runtime_s:.4f}s" if event.runtime_s is not None else ""
                    click.echo(f"{when} {event.hostname} {event.type} {what}{extra}"
                               f"{' ' + event.exception if event.exception else ''}")
            if not follow:
                return
            last = batch[-1][0] if batch else None
            await asyncio.sleep(0.5)
            batch = await ops.read_events(app, last, 1000) if last else await ops.read_events(app, None, limit)

    with contextlib.suppress(KeyboardInterrupt):
        _run(run())


@click.command("inspect")
@click.argument("what", type=click.Choice(["active", "stats", "ping"]), default="stats")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def inspect_command(ctx: click.Context, what: str, as_json: bool) -> None:
    """What live workers hold and have done (from their heartbeats)."""
    app = _app(ctx)
    inspector = app.control.inspect()
    answer = getattr(inspector, what)()
    if as_json:
        click.echo(json.dumps(answer))
        return
    if not answer:
        click.echo("no live workers (none sent a heartbeat recently)")
        return
    from rich.console import Console  # rich only for a table: --json and the other commands start without it
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"inspect {what}")
    table.add_column("worker")
    table.add_column(what)
    for host, value in sorted(answer.items()):
        table.add_row(Text(host), Text(json.dumps(value)))
    Console().print(table)


def register_tools(group: click.Group) -> None:
    for command in (dlq, purge, queues, call, result, events, inspect_command):
        group.add_command(command)
