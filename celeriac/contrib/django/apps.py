"""The Django app config: loads the project's celeriac app once Django's apps are ready."""

from __future__ import annotations

from django.apps import AppConfig
from django.db import close_old_connections

from ... import signals
from ...context import current_request
from .discovery import load_project_app


class CeleriacConfig(AppConfig):  # type: ignore[misc]  # Django ships no type hints
    name = "celeriac.contrib.django"
    label = "celeriac"
    verbose_name = "celeriac task results"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The app module calls ``app.autodiscover_tasks()``, which lists the installed
        # apps: it can only run now, when they are loaded. Importing it here registers
        # the tasks in every Django process (runserver, shell, tests), so a project
        # needs no ``from .celery import app`` in its package ``__init__`` (and with no
        # app module at all, the app made from the CELERY_* settings does the same).
        app = load_project_app(required=False)
        if app is not None:
            app.run_pending_discovery()
        _close_connections_around_tasks()


def _close_old_connections(**_: object) -> None:
    request = current_request()
    if request is not None and request.is_eager:
        # Run in the caller (task_always_eager): its connection is the caller's, perhaps
        # inside a transaction (a TestCase's) that closing it would break.
        return
    close_old_connections()


def _close_connections_around_tasks() -> None:
    """Drop broken or expired database connections before and after each task, in the thread
    that runs it, as Django does around each request (and Celery around each task)."""
    signals.task_prerun.connect(_close_old_connections)
    signals.task_postrun.connect(_close_old_connections)
