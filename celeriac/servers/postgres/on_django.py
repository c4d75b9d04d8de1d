"""Sending inside the caller's Django transaction: the messages commit or roll back with it.

A sync caller (a view, a management command, a sync task body) inside
``transaction.atomic()`` on a Django connection to the broker's own database (the same
host, port and database name) has its messages written on that connection, in that
transaction: the broker's ``publish`` statement (``sql/transport.sql``, the one the pool
sends otherwise) runs through Django's cursor. A rolled-back block leaves nothing behind;
a committed one commits the messages together with the rows they refer to, and the
statement's ``pg_notify`` is delivered by PostgreSQL at the commit, never before, so no
worker can take a message whose rows it could not read yet. Outside a transaction, or on
another database, nothing changes: the broker's pool sends at once.

The statement runs in a savepoint (a nested ``atomic()``): a refused duplicate id rolls
back the savepoint only, raises ``DuplicateTaskError`` as usual, and leaves the caller's
transaction usable.

The broker's calls are coroutines, which a sync caller runs on its thread's private event
loop (``_bridge.py``), in its own thread: that is why the thread's Django connection is
the caller's. While an event loop runs in a thread, though, Django hands out another set
of connections (one per async context) and refuses blocking calls
(``SynchronousOnlyOperation``). That loop is blocked on this very call anyway, so the
lookup and the statement run with the loop hidden from Django. Async callers, and sync
calls made from async code (they run on the bridge's thread), send as usual.

Nothing here imports Django unless the process already did.
"""

from __future__ import annotations

import contextlib
import sys
from asyncio import events
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .connection import PostgresTarget

# Host names that all reach the server on this machine (an empty host is libpq's default
# Unix socket): a Django HOST and a broker URL host from the same set name the same server.
LOCAL_HOSTS = frozenset({"", "localhost", "127.0.0.1", "::1"})
DEFAULT_PORT = "5432"


def _host(value: object) -> str:
    host = str(value or "").strip().lower().removeprefix("[").removesuffix("]")
    return "localhost" if host in LOCAL_HOSTS else host


def same_database(target: PostgresTarget, settings_dict: Mapping[str, Any]) -> bool:
    """Whether a Django ``DATABASES`` entry names the target's host, port and database."""
    name = settings_dict.get("NAME")
    return bool(name) and (
        str(name) == target.dbname
        and str(settings_dict.get("PORT") or DEFAULT_PORT) == target.port
        and _host(settings_dict.get("HOST")) == _host(target.host)
    )


def transaction_alias(target: PostgresTarget) -> str | None:
    """The alias of this thread's Django connection to the target's database that is inside a
    transaction (``atomic()``, or autocommit turned off), or None."""
    if "django.db" not in sys.modules:
        return None  # Django is not in this process: all a plain worker or script pays
    from django.conf import settings

    if not settings.configured:
        return None
    from django.db import connections

    for alias, settings_dict in connections.settings.items():
        if not same_database(target, settings_dict):
            continue
        # Inside a running loop Django's connections are another set, one per async
        # context: with the loop hidden they are the thread's own, the sync caller's.
        with _loop_hidden():
            connection = connections[alias]
        if connection.vendor != "postgresql":
            continue
        if connection.in_atomic_block or (connection.connection is not None and not connection.autocommit):
            return str(alias)
    return None


@contextlib.contextmanager
def _loop_hidden() -> Iterator[None]:
    """Hide this thread's running event loop from Django's async-safety check (see above)."""
    loop = events._get_running_loop()
    if loop is None:
        yield
        return
    events._set_running_loop(None)
    try:
        yield
    finally:
        events._set_running_loop(loop)


def execute(alias: str, statement: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """Run one statement on Django's connection ``alias``, in a savepoint of its transaction.

    Django's errors are raised as they are; the driver's own error is their ``__cause__``.
    """
    from django.db import connections, transaction

    with _loop_hidden(), transaction.atomic(using=alias), connections[alias].cursor() as cursor:
        cursor.execute(statement, params)
        return list(cursor.fetchall()) if cursor.description is not None else []


def on_commit(alias: str, callback: Callable[[], None]) -> None:
    """Call ``callback`` once the transaction of Django's connection ``alias`` commits."""
    from django.db import transaction

    with _loop_hidden():
        transaction.on_commit(callback, using=alias)
