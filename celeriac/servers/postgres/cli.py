"""``celeriac migrate``: create or update celeriac's tables in PostgreSQL from the command line.

Workers and producers apply missing migrations themselves on first use; this command is
for sites where their role may not create tables (run it once as a role that may, at
each upgrade), and for reading the SQL first (``--dry-run``). It migrates the broker's
database and the result backend's, when they are PostgreSQL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ...app import Celery


@click.command("migrate")
@click.option("--dry-run", is_flag=True, help="Print the SQL that would run, and run nothing.")
@click.pass_context
def migrate_command(ctx: click.Context, dry_run: bool) -> None:
    """Create or update celeriac's tables in PostgreSQL (the broker's and the result backend's)."""
    from ..._bridge import run_sync
    from ...exceptions import CeleriacError
    from ...loading import load_app

    app = load_app(ctx)
    try:
        urls = postgres_urls(app)
        if not urls:
            click.echo("nothing to migrate: neither the broker nor the result backend is a postgresql:// URL")
        for url in urls:
            for line in run_sync(migrate_url(url, dry_run)):
                click.echo(line)
    except CeleriacError as exc:  # it says what is wrong and how to fix it: no traceback
        raise click.ClickException(str(exc)) from exc


def postgres_urls(app: Celery) -> list[str]:
    """The app's PostgreSQL URLs, each database and schema once."""
    from .connection import parse_url

    found: dict[Any, str] = {}
    for url in (app.conf.broker(), app.result_backend_url()):
        if url and url.split(":", 1)[0] in ("postgresql", "postgres"):
            found.setdefault(parse_url(url).data_id, url)
    return list(found.values())


async def migrate_url(url: str, dry_run: bool) -> list[str]:
    """Migrate (or, dry, describe) one URL's schema; the lines to print."""
    from .connection import PostgresConnection
    from .migrations import applied_version, dry_run_sql, latest_version, migrate

    connection = PostgresConnection(url)
    target = connection.target
    conn = await connection.connect_one()
    try:
        current = await applied_version(conn, connection.statements)
        if dry_run:
            if current >= latest_version():
                return [f"-- schema {target.schema} of {target.safe_url} is up to date (version {current})"]
            return [dry_run_sql(target.schema, connection.statements, current).rstrip("\n")]
        applied = await migrate(conn, target, connection.statements)
    finally:
        await conn.close()
    if not applied:
        return [f"schema {target.schema} of {target.safe_url} is up to date (version {current})"]
    return [f"applied {m.version:04d}_{m.name} to schema {target.schema} of {target.safe_url}" for m in applied]
