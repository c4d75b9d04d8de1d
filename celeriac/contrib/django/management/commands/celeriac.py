"""``python manage.py celeriac worker|dlq|purge|...``: the ``celeriac`` command for this project.

Everything after ``celeriac`` goes to celeriac's own command line, with ``-A`` set to the
project's app (``CELERIAC_APP`` in settings, else ``<project>.celery``, else one made from
the ``CELERY_*`` settings) unless given.
Django is already set up here, so the app's ``autodiscover_tasks()`` and the tasks' ORM
calls work as in any other management command.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from celeriac.cli import main
from celeriac.contrib.django.discovery import has_app_module, project_app_path

# celeriac's group options that take a value: a token after one of them is not the sub-command.
_GROUP_OPTIONS_WITH_VALUE = frozenset({"-A", "--app", "-b", "--broker", "--workdir"})
# Django's own global options, which manage.py has already applied.
_DJANGO_OPTIONS_WITH_VALUE = frozenset({"--settings", "--pythonpath"})


class Command(BaseCommand):  # type: ignore[misc]  # Django ships no type hints
    help = (
        "Run a celeriac command for this project's app, e.g. 'manage.py celeriac worker -c 100 "
        "--loglevel=INFO' or 'manage.py celeriac dlq list'. Options are celeriac's; "
        "'manage.py celeriac --help' lists the commands."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("celeriac_args", nargs=argparse.REMAINDER, help="celeriac's command and options")

    def run_from_argv(self, argv: list[str]) -> None:
        # Bypass Django's option parser: worker options such as -c or -l mean something
        # else to it, and celeriac's own parser reports usage errors better.
        prog = f"{os.path.basename(argv[0])} {argv[1]}"
        code = forward(strip_django_options(argv[2:]), prog)
        if code:
            raise SystemExit(code)

    def handle(self, *args: Any, **options: Any) -> None:
        """For ``call_command("celeriac", "worker", ...)``."""
        code = forward(list(options.get("celeriac_args") or args), "celeriac")
        if code:
            raise CommandError(f"celeriac exited with code {code}")


def forward(args: list[str], prog: str) -> int:
    """Run celeriac's click group with ``args``; return its exit code."""
    if not names_app(args):
        # The project's own app module, else the app made from the settings (a project
        # that uses only Django's Tasks framework has no celery.py).
        path = project_app_path() if has_app_module() else None
        args = ["-A", path or "celeriac.contrib.django.project", *args]
    try:
        main.main(args=args, prog_name=prog, standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def names_app(args: list[str]) -> bool:
    """True if ``-A``/``--app`` is given before the sub-command."""
    expects_value = False
    for arg in args:
        if expects_value:
            expects_value = False
            continue
        if arg in ("-A", "--app") or arg.startswith("--app=") or (arg.startswith("-A") and len(arg) > 2):
            return True
        if arg in _GROUP_OPTIONS_WITH_VALUE:
            expects_value = True
        elif not arg.startswith("-"):
            return False  # the sub-command: what follows is its own
    return False


def strip_django_options(args: list[str]) -> list[str]:
    """Drop ``--settings``/``--pythonpath``, which manage.py applied before calling us."""
    kept: list[str] = []
    skip_next = False
    for arg in args:
        if skip_next:
            skip_next = False
            continue
        if arg in _DJANGO_OPTIONS_WITH_VALUE:
            skip_next = True
            continue
        if any(arg.startswith(f"{name}=") for name in _DJANGO_OPTIONS_WITH_VALUE):
            continue
        kept.append(arg)
    return kept
