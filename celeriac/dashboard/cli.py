"""``celeriac dashboard``: serve the dashboard; ``celeriac dashboard hash-password``: make a login's hash.

Imports neither Starlette nor uvicorn until the dashboard is started, so the ``celeriac``
command works without the ``dashboard`` extra.
"""

from __future__ import annotations

import logging
import sys

import click

from ..servers import hide_password
from .auth import HOW_TO_SET, hash_password, is_loopback


@click.group("dashboard", invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-A", "--app", "app_path", default=None,
              help="The app (as `celeriac -A`, which may also be given before `dashboard`).")
@click.option("--address", default="127.0.0.1", show_default=True,
              help="Where to listen. Any address but a loopback one needs a login configured.")
@click.option("--port", default=5555, show_default=True, type=int)
@click.option("--open-viewing", is_flag=True,
              help="Let anyone who reaches the dashboard view it; actions still need a login.")
@click.option("--url-prefix", default="", help="Serve under this path, e.g. /dashboard (behind a proxy).")
@click.option("-l", "--loglevel", "--log-level", default="INFO", show_default=True)
@click.pass_context
def dashboard_command(ctx: click.Context, app_path: str | None, address: str, port: int, open_viewing: bool,
                      url_prefix: str, loglevel: str) -> None:
    """A web page to watch and operate celeriac: queues, workers, tasks, dead letters, schedules,
    with /metrics for Prometheus and a JSON API under /api."""
    if ctx.invoked_subcommand is not None:
        return
    from ..loading import load_app

    if app_path:
        root = ctx.find_root()
        root.obj = {**(root.obj or {}), "app_path": app_path}
    app = load_app(ctx)
    try:
        import uvicorn

        from .app import create_app
        from .auth import login_from_settings
    except ImportError as exc:
        raise click.ClickException(f"the dashboard needs {exc.name!r}: pip install 'celeriac[dashboard]'") from exc
    login = login_from_settings(app)
    if login is None and not is_loopback(address):
        raise click.UsageError(
            f"refusing to listen on {address} without a login: anyone who reaches it could purge queues "
            f"and revoke tasks. {HOW_TO_SET}; or listen on 127.0.0.1 (the default).")
    logging.basicConfig(level=loglevel.upper(), format="[%(asctime)s: %(levelname)s] %(message)s")
    asgi = create_app(app, login=login, open_viewing=open_viewing)
    prefix = "/" + url_prefix.strip("/") if url_prefix.strip("/") else ""
    if prefix:
        from starlette.applications import Starlette
        from starlette.responses import RedirectResponse
        from starlette.routing import Mount, Route

        async def to_prefix(_: object) -> RedirectResponse:
            return RedirectResponse(prefix + "/")

        asgi = Starlette(routes=[Route("/", to_prefix), Mount(prefix, app=asgi)])
    shown = f"[{address}]" if ":" in address else address
    click.echo(f"celeriac dashboard: http://{shown}:{port}{prefix}/ (broker {hide_password(app.settings.broker_url)})")
    if login is None:
        click.echo(f"no login configured: viewing from this machine only, and no actions; {HOW_TO_SET}")
    else:
        click.echo(f"actions need a login ({login.describe()}); viewing "
                   + ("is open" if open_viewing else "needs it too (--open-viewing opens it)"))
    config = uvicorn.Config(asgi, host=address, port=port, log_level=loglevel.lower(), access_log=False,
                            timeout_graceful_shutdown=3, lifespan="on")
    uvicorn.Server(config).run()


@dashboard_command.command("hash-password")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
def hash_password_command(password_stdin: bool) -> None:
    """Print a password hash for dashboard_password_hash / $CELERIAC_DASHBOARD_PASSWORD_HASH."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise click.UsageError("the password is empty")
    click.echo(hash_password(password))
