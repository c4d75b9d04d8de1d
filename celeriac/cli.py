"""``celeriac``: the command line, with Celery's ``-A proj`` before the sub-command."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from .app import Celery


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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


def load_app(ctx: click.Context) -> Celery:
    """Find the app the way Celery's -A does."""
    obj = ctx.find_root().obj or {}
    path, broker = obj.get("app_path"), obj.get("broker")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    if path is None:
        from .app import current_app

        app = current_app()
    else:
        app = find_app(path)
    if broker:
        app.conf.broker_url = broker
    _setup_django(app)
    return app


def _setup_django(app: Celery) -> None:
    """In a Django project (the app module set DJANGO_SETTINGS_MODULE), load Django's apps
    before running anything, as Celery's Django fix-up does, then the waiting discovery."""
    settings_module = os.environ.get("DJANGO_SETTINGS_MODULE")
    if not settings_module:
        return
    try:
        import django
    except ImportError:
        return
    try:
        importlib.import_module(settings_module)
    except ModuleNotFoundError as exc:
        if exc.name != settings_module:
            raise
        # Inherited from a parent shell but naming nothing here: not a Django project.
        logging.getLogger("celeriac").warning(
            "DJANGO_SETTINGS_MODULE=%s cannot be imported from here; not setting up Django", settings_module)
        return
    django.setup()
    app.run_pending_discovery()


def find_app(path: str) -> Celery:
    from .app import Celery

    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        parent, _, last = module_name.rpartition(".")
        if not attribute and parent and exc.name == module_name:
            # Celery reads -A proj.celery.app as module proj.celery, attribute app.
            try:
                return find_app(f"{parent}:{last}")
            except (click.UsageError, AttributeError):
                pass
        raise click.UsageError(f"cannot import {module_name!r} for -A {path}: {exc}") from exc
    if attribute:
        found: Any = module
        for part in attribute.split("."):
            found = getattr(found, part)
        if callable(found) and not isinstance(found, Celery):
            found = found()
        if not isinstance(found, Celery):
            raise click.UsageError(f"-A {path} is a {type(found).__name__}, not a Celery app")
        return found
    for name in ("app", "celery"):
        candidate = getattr(module, name, None)
        if isinstance(candidate, Celery):
            return candidate
    for value in vars(module).values():
        if isinstance(value, Celery):
            return value
    try:
        return find_app(f"{module_name}.celery")
    except click.UsageError:
        pass
    raise click.UsageError(
        f"no Celery app found in {module_name!r}; name it app or celery, or pass -A module:attribute"
    )


def _register() -> None:
    from .beat.cli import beat_command
    from .worker.cli import worker_command

    main.add_command(worker_command)
    main.add_command(beat_command)
    try:
        from .demo.cli import demo_command
    except ImportError:
        pass
    else:
        main.add_command(demo_command)
    from .tools import register_tools

    register_tools(main)


_register()
