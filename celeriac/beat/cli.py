"""``celeriac beat``: Celery's options, spelled as Celery spells them, plus the schedule tools.

``celeriac -A proj beat --loglevel=INFO`` runs a beat (start as many as you like);
``--list`` shows the schedule, ``--enable/--disable NAME`` switch an entry on every beat,
``--run-now NAME`` sends an entry's task at once. Options that mean nothing here
(``--schedule``'s file, ``--detach``, ``--uid``...) are accepted and logged once.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import click

from .._bridge import run_sync
from ..exceptions import AppNotFound, ConfigurationError
from ..loading import load_app
from ..worker.cli import run_loop, setup_logging
from . import ops
from .loop import Beat

logger = logging.getLogger("celeriac.beat")


@click.command("beat", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-l", "--loglevel", "--log-level", default="WARNING", show_default=True,
              help="INFO logs one line per tick sent.")
@click.option("-f", "--logfile", default=None, help="Log to this file instead of stderr.")
@click.option("--pidfile", default=None, help="Write the process id here.")
@click.option("-S", "--scheduler", default=None,
              help="'default' (beat_schedule) or 'django' (the admin's periodic tasks; "
                   "django_celery_beat.schedulers:DatabaseScheduler means the same).")
@click.option("--max-interval", type=float, default=None,
              help="Seconds between reads of shared switches and schedule edits (default 5).")
@click.option("-s", "--schedule", "schedule_file", default=None,
              help="Accepted: beat keeps its state with the broker, not in a file.")
@click.option("--detach", is_flag=True, hidden=True)
@click.option("--uid", default=None, hidden=True)
@click.option("--gid", default=None, hidden=True)
@click.option("--umask", default=None, hidden=True)
@click.option("--executable", default=None, hidden=True)
@click.option("--list", "list_entries", is_flag=True, help="Show the schedule and exit.")
@click.option("--json", "as_json", is_flag=True, help="With --list: print JSON.")
@click.option("--enable", "enable", multiple=True, metavar="NAME", help="Switch an entry on, on every beat.")
@click.option("--disable", "disable", multiple=True, metavar="NAME", help="Switch an entry off, on every beat.")
@click.option("--run-now", "run_now", multiple=True, metavar="NAME", help="Send an entry's task now.")
@click.pass_context
def beat_command(ctx: click.Context, /, **options: Any) -> None:
    """Send periodic tasks; any number of beats may run at once."""
    setup_logging(options["loglevel"], options["logfile"])
    try:
        app = load_app(ctx)
        source = ops.make_source(app, options["scheduler"])
    except AppNotFound:
        raise  # a usage error, made so by the celeriac command (celeriac.cli)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    if options["list_entries"] or options["enable"] or options["disable"] or options["run_now"]:
        _manage(app, source, options)
        return
    _log_ignored(options)
    if options["pidfile"]:
        with open(options["pidfile"], "w") as f:
            f.write(str(os.getpid()))
    app.import_default_modules()
    beat = Beat(app, source=source, sync_s=options["max_interval"])
    try:
        run_loop(beat.run())
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        logging.shutdown()


def _manage(app: Any, source: Any, options: dict[str, Any]) -> None:
    app.import_default_modules()
    app.finalize()
    try:
        for name in options["disable"]:
            run_sync(ops.switch(app, source, name, False))
            click.echo(f"disabled {name}")
        for name in options["enable"]:
            run_sync(ops.switch(app, source, name, True))
            click.echo(f"enabled {name}")
        for name in options["run_now"]:
            task_id = run_sync(ops.run_now(app, source, name))
            click.echo(f"sent {name}: {task_id}")
        if options["list_entries"]:
            views = run_sync(ops.list_entries(app, source))
            if options["as_json"]:
                click.echo(json.dumps([v.as_dict() for v in views]))
            else:
                _print_table(app, views)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None


def _print_table(app: Any, views: list[Any]) -> None:
    from rich.console import Console  # rich only for a table: every other command starts without it
    from rich.table import Table
    from rich.text import Text

    tz = app.settings.tz
    table = Table(title=f"beat schedule ({len(views)} entries, times in {tz})")
    for column in ("name", "task", "schedule", "next fire", "last fire", "last task id", "state"):
        table.add_column(column)
    for v in views:
        next_fire = Text(v.next_fire or "-") if v.enabled else Text("disabled", style="yellow")
        last_fire = (v.last_fire or "-") + (" (by hand)" if v.last_was_manual else "")
        table.add_row(Text(v.name), Text(v.task), Text(v.schedule), next_fire, Text(last_fire),
                      Text(v.last_task_id or "-"), Text(v.last_state or "-"))
    Console().print(table)


def _log_ignored(options: dict[str, Any]) -> None:
    if options.get("schedule_file"):
        logger.info("accepted and ignored: --schedule %s (beat keeps its state with the broker)",
                    options["schedule_file"])
    ignored = [f"--{name}" for name in ("detach", "uid", "gid", "umask", "executable") if options.get(name)]
    if ignored:
        logger.warning("accepted and ignored: %s (beat runs in the foreground as this user; use your process "
                       "supervisor for that)", " ".join(ignored))
