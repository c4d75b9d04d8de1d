"""Finding the Django project's celeriac app."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ...app import Celery


def project_app_path() -> str | None:
    """``settings.CELERIAC_APP``, else ``<project>.celery`` beside the settings module."""
    from django.conf import settings

    explicit = getattr(settings, "CELERIAC_APP", None)
    if explicit:
        return str(explicit)
    settings_module: str | None = getattr(settings, "SETTINGS_MODULE", None)
    package = (settings_module or "").rpartition(".")[0]
    return f"{package}.celery" if package else None


def load_project_app(required: bool = True) -> Celery | None:
    """Import the project's app; None when it is not set and the conventional module is absent."""
    from ...cli import find_app

    path = project_app_path()
    if path is None:
        if required:
            raise LookupError(_HOW_TO_NAME_THE_APP)
        return None
    module_name = path.partition(":")[0]
    explicit = _is_explicit()
    try:
        importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only a missing conventional module is fine; a broken import inside it is not.
        if explicit or required or exc.name != module_name:
            raise
        return None
    return find_app(path)


def _is_explicit() -> bool:
    from django.conf import settings

    return bool(getattr(settings, "CELERIAC_APP", None))


_HOW_TO_NAME_THE_APP = (
    "cannot find the project's celeriac app: set CELERIAC_APP = 'proj.celery:app' in the Django "
    "settings, or define app = Celery(...) in a celery.py beside the settings module"
)
