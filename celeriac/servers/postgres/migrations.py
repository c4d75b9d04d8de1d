"""celeriac's tables, made and brought up to date by numbered migrations.

Each change to the schema is a file ``sql/NNNN_name.sql``, never edited once released: a
later change is a new file. The ``{schema}`` and state-code placeholders are filled in as
in the named statements. ``{schema}.migrations`` records the versions applied.

On first use in each process (``PostgresConnection.open``) one query reads the version;
only when something is missing does the process take a session advisory lock (one per
schema), create the schema if it does not exist, and apply the missing files in order,
each in its own transaction with its version row. A process that started at the same
moment waits on the lock and then finds nothing left to do. ``celeriac migrate`` does the
same from the command line (``--dry-run`` prints the SQL instead), for sites where the
workers' role may not create tables.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

import psycopg
from psycopg import AsyncConnection

from .connection import PostgresTarget, Row, explain_privilege_error, sql_constants

logger = logging.getLogger("celeriac.postgres")

_FILE = re.compile(r"(\d{4})_([\w-]+)\.sql")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str  # placeholders filled in for one schema


@cache
def _files() -> tuple[tuple[int, str, str], ...]:
    """(version, name, text) of every migration file, in order."""
    found = []
    for entry in resources.files("celeriac.servers.postgres").joinpath("sql").iterdir():
        match = _FILE.fullmatch(entry.name)
        if match:
            found.append((int(match[1]), match[2], entry.read_text()))
    found.sort()
    versions = [version for version, _, _ in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"celeriac's PostgreSQL migrations are not numbered 1, 2, 3...: {versions}")
    return tuple(found)


def migrations(schema: str) -> list[Migration]:
    constants = sql_constants(schema)
    return [Migration(version, name, text.format(**constants)) for version, name, text in _files()]


def latest_version() -> int:
    return len(_files())


def lock_key(schema: str) -> int:
    """The advisory lock of one schema's migrations: a signed 64-bit number from its name."""
    return int.from_bytes(hashlib.sha256(f"celeriac-migrate:{schema}".encode()).digest()[:8], "big", signed=True)


async def applied_version(conn: AsyncConnection[Row], statements: dict[str, str]) -> int:
    """The newest version applied; 0 where celeriac never ran (no schema or no version table)."""
    try:
        cursor = await conn.execute(statements["applied"])
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
        return 0
    row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def pending(conn: AsyncConnection[Row], schema: str, statements: dict[str, str]) -> list[Migration]:
    current = await applied_version(conn, statements)
    if current > latest_version():
        logger.warning("celeriac's schema %r is at version %d, newer than this celeriac knows (%d); "
                       "upgrade celeriac on every worker", schema, current, latest_version())
    return [m for m in migrations(schema) if m.version > current]


async def migrate(conn: AsyncConnection[Row], target: PostgresTarget, statements: dict[str, str]) -> list[Migration]:
    """Apply the missing migrations on ``conn`` (autocommit); return those applied here."""
    if not await pending(conn, target.schema, statements):
        return []
    key = lock_key(target.schema)
    await conn.execute(statements["lock"], {"key": key})
    try:
        return await _apply_missing(conn, target, statements)
    finally:
        await conn.execute(statements["unlock"], {"key": key})


async def _apply_missing(
    conn: AsyncConnection[Row], target: PostgresTarget, statements: dict[str, str]
) -> list[Migration]:
    try:
        cursor = await conn.execute(statements["schema_exists"], {"schema": target.schema})
        row = await cursor.fetchone()
        # CREATE SCHEMA IF NOT EXISTS checks the right to create before it looks, so a
        # role that may only use a schema made for it must not run it.
        if not (row and row[0]):
            await conn.execute(statements["create_schema"])
        await conn.execute(statements["create_version_table"])
        cursor = await conn.execute(statements["versions"])
        done = {int(r[0]) for r in await cursor.fetchall()}
        applied = []
        for migration in migrations(target.schema):
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)  # no parameters: several statements in one
                await conn.execute(statements["record_version"],
                                   {"version": migration.version, "name": migration.name})
            logger.info("applied celeriac migration %04d_%s to schema %r of %s", migration.version,
                        migration.name, target.schema, target.safe_url)
            applied.append(migration)
        return applied
    except psycopg.errors.InsufficientPrivilege as exc:
        raise explain_privilege_error(exc, target) from exc


def dry_run_sql(schema: str, statements: dict[str, str], after_version: int) -> str:
    """The SQL that migrating a schema at ``after_version`` would run, for people to read."""
    parts = [f"-- celeriac migrations for schema {schema} (at version {after_version}, "
             f"latest {latest_version()})",
             statements["create_schema"], statements["create_version_table"]]
    for migration in migrations(schema):
        if migration.version > after_version:
            parts += [f"-- {migration.version:04d}_{migration.name}.sql", "BEGIN;", migration.sql.strip(),
                      f"INSERT INTO {schema}.migrations (version, name) VALUES ({migration.version}, "
                      f"'{migration.name}');", "COMMIT;"]
    return "\n".join(parts) + "\n"
