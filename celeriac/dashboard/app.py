"""The ASGI app: ``create_app(celery_app)``, to serve alone or mount under a path."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from . import api, pages
from .auth import Login, Policy, Signer, login_from_settings
from .reads import Dashboard
from .web import HERE, Site

if TYPE_CHECKING:
    from ..app import Celery

_FROM_SETTINGS: Any = object()

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"),
]


class _StartMonitor:
    """Starts the event-log follower on the first request (a mounted app may get no lifespan
    event) and adds the security headers to every response."""

    def __init__(self, app: ASGIApp, site: Site) -> None:
        self.app = app
        self.site = site

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.site.dash.monitor.start()

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(celery_app: Celery, *, login: Login | None = _FROM_SETTINGS, open_viewing: bool = False,
               secret: str | bytes | None = None, title: str = "celeriac") -> Starlette:
    """The dashboard for ``celery_app`` as a Starlette app.

    ``login`` defaults to the one the app's settings or the environment configure
    (``dashboard_user``/``dashboard_password_hash``), else Django's staff users in a Django
    project, else none (nobody can act, and only this machine may view). ``open_viewing``
    lets anyone who reaches it view the pages. ``secret`` signs the session cookies (default
    $CELERIAC_DASHBOARD_SECRET, else random: logins end when the process does).
    """
    policy = Policy(login_from_settings(celery_app) if login is _FROM_SETTINGS else login, open_viewing,
                    Signer(secret))
    site = Site(Dashboard(celery_app), policy, title)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await site.dash.monitor.stop()

    routes = [*pages.routes(site), *api.routes(site),
              Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")]
    starlette = Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(_StartMonitor, site=site)])
    starlette.state.site = site
    return starlette


def with_dashboard(other: ASGIApp, celery_app: Celery, prefix: str = "/dashboard", **options: Any) -> ASGIApp:
    """``other`` (say Django's ``get_asgi_application()``) with the dashboard under ``prefix``."""
    dashboard = create_app(celery_app, **options)
    prefix = "/" + prefix.strip("/")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == prefix or path.startswith(prefix + "/")):
            if path == prefix:
                path = prefix + "/"
            await dashboard({**scope, "path": path, "root_path": scope.get("root_path", "") + prefix},
                            receive, send)
            return
        await other(scope, receive, send)

    return app
