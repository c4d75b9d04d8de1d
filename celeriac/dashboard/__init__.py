"""``celeriac dashboard``: a web page to watch and operate celeriac, with /metrics and a JSON API.

``create_app(celery_app)`` is the ASGI app, to run alone (``celeriac dashboard``) or mount
under a path in a Starlette or Django project (``with_dashboard``). Needs the ``dashboard``
extra: ``pip install 'celeriac[dashboard]'``. See docs/dashboard.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.types import ASGIApp

    from ..app import Celery


def create_app(celery_app: Celery, **options: Any) -> Starlette:
    from .app import create_app as create

    return create(celery_app, **options)


def with_dashboard(other: ASGIApp, celery_app: Celery, prefix: str = "/dashboard", **options: Any) -> ASGIApp:
    from .app import with_dashboard as mount

    return mount(other, celery_app, prefix, **options)


__all__ = ["create_app", "with_dashboard"]
