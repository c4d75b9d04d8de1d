"""Finding the app a command line or a Django setting names: ``-A proj``, ``proj.celery:app``.

Used by the ``celeriac`` commands and by the Django integration (``CELERIAC_APP``, a tasks
backend's ``"app"`` option). An app that cannot be found raises :class:`AppNotFound`, a
``ConfigurationError`` saying what to fix; the command line shows it as a usage error
(``celeriac.cli`` converts it there, at its boundary).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import TYPE_CHECKING, Any

from .app import Celery, current_app
from .exceptions import AppNotFound

if TYPE_CHECKING:
    import click


def find_app(path: str) -> Celery:
    """The app ``path`` names: ``module``, ``module:attribute`` or a package (its ``.celery``), as Celery's -A."""
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        parent, _, last = module_name.rpartition(".")
        if not attribute and parent and exc.name == module_name:
            # Celery reads -A proj.celery.app as module proj.celery, attribute app.
            try:
                return find_app(f"{parent}:{last}")
            except (AppNotFound, AttributeError):
                pass
        hint = _import_hint(module_name, exc)
        raise AppNotFound(f"cannot import {module_name!r} for -A {path}: {exc}{hint}") from exc
    if attribute:
        found: Any = module
        for part in attribute.split("."):
            found = getattr(found, part)
        if callable(found) and not isinstance(found, Celery):
            found = found()
        if not isinstance(found, Celery):
            raise AppNotFound(f"-A {path} is a {type(found).__name__}, not a Celery app; "
                              "name the app itself: module:attribute, e.g. proj.celery:app")
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
    except AppNotFound:
        pass
    raise AppNotFound(
        f"no Celery app found in {module_name!r}; name it app or celery, or pass -A module:attribute"
    )


def _import_hint(module_name: str, exc: ModuleNotFoundError) -> str:
    """How to fix a module that is not there; nothing when the module failed on an import of its own."""
    if exc.name is None or not (module_name == exc.name or module_name.startswith(f"{exc.name}.")):
        return ""
    return "; check the name, and run from the directory that holds it (or pass --workdir)"


def load_app(ctx: click.Context) -> Celery:
    """The app a ``celeriac`` command runs with: ``-A``, else the app created last (or a default one).

    Reads what the ``celeriac`` group keeps on the root context (``-A``, ``--broker``, which
    overrides the app's broker). In a Django project, Django is set up first.
    """
    obj = ctx.find_root().obj or {}
    path, broker = obj.get("app_path"), obj.get("broker")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    app = current_app() if path is None else find_app(path)
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
    try:  # Django is optional
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
