"""``postgresql://``, ``postgres://``: broker and result store in one PostgreSQL database.

Everything about PostgreSQL lives here: the URL and the calls (``connection.py``), a
pool of connections with no tasks of its own (``pool.py``), the numbered migrations that
make the tables (``migrations.py``, ``sql/NNNN_*.sql``), the named statements
(``sql/transport.sql``, ``sql/results.sql``, ``sql/housekeeping.sql``), the LISTEN
connection that wakes idle workers and ``get()`` (``listener.py``), the deletion of
expired rows (``housekeeping.py``), the broker (``transport.py``), the result store
(``results.py``), sending inside the caller's Django transaction (``on_django.py``) and
``celeriac migrate`` (``cli.py``). All of celeriac's tables are in one schema
(``?schema=``, default ``celeriac``).

psycopg is imported when a server is opened, not with this package: the ``celeriac``
command imports ``cli.py`` for every sub-command, and the others need not pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...exceptions import CeleriacError, ConfigurationError
from ..contracts import BrokerOptions

if TYPE_CHECKING:
    from .connection import PostgresConnection
    from .results import PostgresResultStore
    from .transport import PostgresBroker


class MessageTooLarge(CeleriacError, ValueError):
    """A message over the broker URL's ``max_message_size``: refused before anything is written."""


def _connection(url: str) -> PostgresConnection:
    try:
        from .connection import PostgresConnection
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("psycopg"):
            raise
        raise ConfigurationError(
            f"the PostgreSQL broker and result store need the {exc.name!r} package; install it with "
            "pip install 'celeriac[postgres]'"
        ) from exc
    return PostgresConnection(url)


class PostgresServer:
    # The ack statement writes the results of the tasks it acknowledges, in the same
    # statement (one transaction, one round trip).
    acks_carry_results = True

    def __init__(self, url: str) -> None:
        self.url = url
        self.connection = _connection(url)

    def holds(self, url: str) -> bool:
        """Whether ``url`` names the same host, port, database and schema."""
        from .connection import parse_url

        try:
            return parse_url(url).data_id == self.connection.target.data_id
        except Exception:  # not a PostgreSQL URL at all
            return False

    def transport(self, options: BrokerOptions) -> PostgresBroker:
        from .transport import PostgresBroker

        return PostgresBroker(self.url, options, self.connection)

    def results(self, expires_s: float | None) -> PostgresResultStore:
        from .results import PostgresResultStore

        return PostgresResultStore(self.url, expires_s, self.connection)
