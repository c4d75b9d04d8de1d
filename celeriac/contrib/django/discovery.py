"""Finding the Django project's celeriac app."""

from __future__ import annotations

import importlib
import importlib.util

from django.conf import settings

from ... import _state
from ...app import Celery
from ...loading import find_app


def project_app_path() -> str | None:
    """``settings.CELERIAC_APP``, else ``<project>.celery`` beside the settings module."""
    explicit = getattr(settings, "CELERIAC_APP", None)
    if explicit:
        return str(explicit)
    settings_module: str | None = getattr(settings, "SETTINGS_MODULE", None)
    package = (settings_module or "").rpartition(".")[0]
    return f"{package}.celery" if package else None


def load_project_app(required: bool = True) -> Celery | None:
    """The project's app: ``CELERIAC_APP``, else ``<project>.celery``, else a default one.

    When the project names no app and has no ``celery.py``, the app created last is used,
    or, if there is none, :func:`default_app`: a project that only uses Django's Tasks
    framework needs no celeriac module of its own. An app that is named but cannot be
    imported raises (``required`` is kept for callers written when this could be None).
    """
    path = project_app_path()
    if path is None:
        return default_app()
    module_name = path.partition(":")[0]
    try:
        importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only a missing conventional module is fine; a broken import inside it is not.
        if _is_explicit() or exc.name != module_name:
            raise
        return default_app()
    return find_app(path)


_default_app: Celery | None = None


def default_app() -> Celery:
    """The app created last; else one made from Django's settings, as ``proj/celery.py`` would be.

    ``Celery(<project>)`` reading ``CELERY_*`` settings, discovering ``tasks.py`` in every
    installed app, made once.
    """
    global _default_app
    existing = _state.peek_current_app()
    if existing is not None:
        return existing
    if _default_app is None:
        settings_module: str = getattr(settings, "SETTINGS_MODULE", None) or ""
        made = Celery(settings_module.rpartition(".")[0] or "django")
        made.config_from_object("django.conf:settings", namespace="CELERY")
        made.autodiscover_tasks()
        _default_app = made
    return _default_app


def has_app_module() -> bool:
    """Whether the project names an app (``CELERIAC_APP``) or has its ``<project>.celery`` module."""
    path = project_app_path()
    if path is None:
        return False
    if _is_explicit():
        return True
    try:
        return importlib.util.find_spec(path.partition(":")[0]) is not None
    except ModuleNotFoundError:
        return False


def _is_explicit() -> bool:
    return bool(getattr(settings, "CELERIAC_APP", None))


_HOW_TO_NAME_THE_APP = (
    "cannot find the project's celeriac app: set CELERIAC_APP = 'proj.celery:app' in the Django "
    "settings, or define app = Celery(...) in a celery.py beside the settings module"
)
