"""Terminal tools: ``celeriac dlq``, ``purge``, ``queues``, ``call``, ``result``, ``events``,
``status``, ``inspect`` and ``control``.

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
    """Show the event log: tasks received, started and finished, and worker heartbeats."""
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
                    if event.task_id:
                        what = f"{event.name}[{event.task_id}]"
                    elif event.type in (ops.CONTROL_REQUEST, ops.CONTROL_REPLY):
                        message = ops.decode_control(raw)
                        what = f"{message.command or ''}[{message.request_id}]"
                    else:
                        what = f"held={len(event.held or [])}"
                    extra = (f" {event.runtime_s:.4f}s" if event.runtime_s is not None
                             else f" waited {event.wait_s:.4f}s" if event.wait_s is not None else "")
                    click.echo(f"{when} {event.hostname} {event.type} {what}{extra}"
                               f"{' ' + event.exception if event.exception else ''}")
            if not follow:
                return
            last = batch[-1][0] if batch else None
            await asyncio.sleep(0.5)
            batch = await ops.read_events(app, last, 1000) if last else await ops.read_events(app, None, limit)

    with contextlib.suppress(KeyboardInterrupt):
        _run(run())


# --- remote control: celeriac status / inspect / control, in Celery's output shape ----------

EX_UNAVAILABLE = 69  # sysexits.h: Celery's exit status when no worker answered

INSPECT_COMMANDS = {
    # name: (signature shown in --help, how the words after the name become arguments)
    "active": ("", None), "reserved": ("", None), "scheduled": ("", None), "stats": ("", None),
    "ping": ("", None), "active_queues": ("", None), "revoked": ("", None), "clock": ("", None),
    "report": ("", None),
    "registered": ("[attr1 [attr2 ...]]", lambda words: {"taskinfoitems": list(words)}),
    "query_task": ("id1 [id2 ...]", lambda words: {"ids": list(words)}),
    "conf": ("[include_defaults=False]",
             lambda words: {"with_defaults": bool(words) and words[0].lower() in ("1", "true", "yes", "on")}),
}


def _float_or_none(word: str) -> float | None:
    return None if word.lower() in ("none", "") else float(word)


def _control_arguments(command: str, words: tuple[str, ...]) -> dict[str, Any]:
    def need(count: int, usage: str) -> None:
        if len(words) < count:
            raise click.UsageError(f"control {command} takes arguments: {usage}")

    if command == "rate_limit":
        need(2, "<task_name> <rate_limit (e.g. 5/s | 5/m | 5/h)>")
        return {"task_name": words[0], "rate_limit": words[1]}
    if command == "time_limit":
        need(2, "<task_name> <soft_secs> [hard_secs]")
        return {"task_name": words[0], "soft": _float_or_none(words[1]),
                "hard": _float_or_none(words[2]) if len(words) > 2 else None}
    if command in ("add_consumer", "cancel_consumer"):
        need(1, "<queue>")
        return {"queue": words[0]}
    if command == "revoke":
        need(1, "id1 [id2 ...]")
        return {"task_id": list(words)}
    if command == "terminate":
        need(2, "<signal> id1 [id2 ...]")
        return {"signal": words[0], "task_id": list(words[1:])}
    return {}


CONTROL_COMMANDS = ("rate_limit", "time_limit", "add_consumer", "cancel_consumer", "shutdown", "revoke",
                    "terminate", "ping")


def _pretty(answer: Any) -> tuple[str, str]:
    """(status, body) for one worker's answer, laid out as Celery's command line does."""
    if isinstance(answer, list):
        return "OK", "\n".join(f"* {item}" for item in answer) if answer else "- empty -"
    if isinstance(answer, dict):
        if "ok" in answer:
            return "OK", _indent(_pretty(answer["ok"])[1])
        if "error" in answer:
            return "ERROR", _indent(_pretty(answer["error"])[1])
        return "OK", json.dumps(answer, sort_keys=True, indent=4, default=repr)
    if isinstance(answer, str):
        return "OK", answer
    from pprint import pformat

    return "OK", pformat(answer)


def _indent(text: str, by: int = 4) -> str:
    return "\n".join(" " * by + line for line in text.splitlines())


def _say_reply(show_body: bool) -> Any:
    def say(reply: dict[str, Any]) -> None:
        for host, answer in reply.items():
            status, body = _pretty(answer)
            click.echo(f"->  {host}: {status}")
            if show_body and body:
                click.echo(_indent(body))
    return say


class NoReply(click.ClickException):
    exit_code = EX_UNAVAILABLE


def _no_reply() -> click.ClickException:
    return NoReply("No nodes replied within time constraint")


def _nodes_online(count: int) -> str:
    return f"\n{count} {'node' if count == 1 else 'nodes'} online."


def _destination(value: str | None) -> list[str] | None:
    return [name.strip() for name in value.split(",") if name.strip()] if value else None


_timeout_option = click.option("-t", "--timeout", type=float, default=1.0, show_default=True,
                               help="Seconds to wait for replies.")
_destination_option = click.option("-d", "--destination", default=None,
                                   help="Comma-separated worker names (default: every worker).")
_json_option = click.option("-j", "--json", "as_json", is_flag=True, help="Print the replies as one JSON document.")


@click.command("status")
@_timeout_option
@_destination_option
@_json_option
@click.pass_context
def status(ctx: click.Context, timeout: float, destination: str | None, as_json: bool) -> None:
    """List the workers that are online (those that answer a ping)."""
    app = _app(ctx)
    replies = app.control.inspect(timeout=timeout, destination=_destination(destination),
                                  callback=None if as_json else _say_reply(False)).ping()
    if not replies:
        raise _no_reply()
    if as_json:
        click.echo(json.dumps(replies))
        return
    click.echo(_nodes_online(len(replies)))


@click.command("inspect")
@click.argument("command", type=click.Choice(sorted(INSPECT_COMMANDS)), default="stats")
@click.argument("words", nargs=-1)
@_timeout_option
@_destination_option
@_json_option
@click.pass_context
def inspect_command(ctx: click.Context, command: str, words: tuple[str, ...], timeout: float,
                    destination: str | None, as_json: bool) -> None:
    """Ask the workers: active, reserved, scheduled, registered, stats, ping, active_queues, ...

    Each worker reads requests from the broker's event log a few times a second and
    answers the same way.
    """
    app = _app(ctx)
    _, parse = INSPECT_COMMANDS[command]
    arguments = parse(words) if parse is not None else {}
    inspector = app.control.inspect(timeout=timeout, destination=_destination(destination),
                                    callback=None if as_json else _say_reply(True))
    replies = inspector._request(command, **arguments)
    if not replies:
        raise _no_reply()
    if as_json:
        click.echo(json.dumps(replies, default=repr))
        return
    click.echo(_nodes_online(len(replies)))


@click.command("control")
@click.argument("command", type=click.Choice(CONTROL_COMMANDS))
@click.argument("words", nargs=-1)
@_timeout_option
@_destination_option
@_json_option
@click.pass_context
def control_command(ctx: click.Context, command: str, words: tuple[str, ...], timeout: float,
                    destination: str | None, as_json: bool) -> None:
    """Tell the workers: rate_limit TASK RATE, time_limit TASK SOFT [HARD], add_consumer QUEUE,
    cancel_consumer QUEUE, shutdown, revoke ID..., terminate SIGNAL ID..."""
    app = _app(ctx)
    arguments = _control_arguments(command, words)
    say = None if as_json else _say_reply(True)
    if command in ("revoke", "terminate"):
        replies = app.control.revoke(arguments["task_id"], destination=_destination(destination),
                                     terminate=command == "terminate", signal=arguments.get("signal"),
                                     reply=True, timeout=timeout, callback=say)
    else:
        replies = app.control.broadcast(command, arguments, destination=_destination(destination), reply=True,
                                        timeout=timeout, callback=say)
    if not replies:
        raise _no_reply()
    if as_json:
        click.echo(json.dumps(replies, default=repr))


def register_tools(group: click.Group) -> None:
    for command in (dlq, purge, queues, call, result, events, status, inspect_command, control_command):
        group.add_command(command)
