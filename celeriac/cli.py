"""``celeriac``: the command line, with Celery's ``-A proj`` before the sub-command."""

from __future__ import annotations

import functools
import os
from typing import Any

import click

from .beat.cli import beat_command
from .dashboard.cli import dashboard_command
from .exceptions import AppNotFound
from .loading import find_app as find_app  # re-exported: its home before celeriac.loading
from .loading import load_app as load_app  # re-exported: its home before celeriac.loading
from .servers.postgres.cli import migrate_command
from .tools import register_tools
from .worker.cli import worker_command

_commands: list[click.Command] = [worker_command, beat_command, migrate_command, dashboard_command]
try:
    from .demo.cli import demo_command
except ImportError:  # the demo needs the resource module, which Windows lacks
    pass
else:
    _commands.append(demo_command)


class _Group(click.Group):
    """The ``celeriac`` group: the command line's boundary with the rest of celeriac.

    Finding the app (``celeriac.loading``) raises ``AppNotFound``, celeriac's own error;
    inside each sub-command it is made a click usage error (exit status 2), so that click
    names the sub-command in it (``Usage: celeriac worker [OPTIONS]``).
    """

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        _app_not_found_as_usage_error(cmd)
        super().add_command(cmd, name)


def _app_not_found_as_usage_error(command: click.Command) -> None:
    callback = command.callback
    if callback is not None:
        @functools.wraps(callback)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return callback(*args, **kwargs)
            except AppNotFound as exc:
                raise click.UsageError(str(exc)) from exc

        command.callback = run
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _app_not_found_as_usage_error(sub)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-A", "--app", "app_path", default=None, envvar="CELERIAC_APP",
              help="The app: module, module:attribute or package (finds .celery).")
@click.option("-b", "--broker", default=None, help="Broker URL, overriding the app's.")
@click.option("--workdir", default=None, help="Change to this directory first.")
@click.pass_context
def main(ctx: click.Context, app_path: str | None, broker: str | None, workdir: str | None) -> None:
    """celeriac: a Celery-compatible task queue."""
    if workdir:
        os.chdir(workdir)
    ctx.obj = {"app_path": app_path, "broker": broker}


def _register() -> None:
    for command in _commands:
        main.add_command(command)
    register_tools(main)


_register()
