"""The connection to PostgreSQL that the broker and the result store share: URL, pool, calls.

URLs::

    postgresql://[user[:password]@]host[:port]/dbname[?options]
    postgres://...                    the same

celeriac's own query options (removed before the URL reaches libpq; every other option,
such as ``sslmode`` or ``connect_timeout``, goes to libpq unchanged):

``schema`` (default ``celeriac``)
    The schema holding celeriac's tables, created on first use (``migrations.py``), so
    several apps or test runs can share one database. Lower-case letters, digits and
    ``_``, as an unquoted PostgreSQL name.
``max_connections`` (default 10)
    The most connections in use at once (per process and event loop; ``pool.py``); one
    more listens for notifications while a worker waits for messages or ``get()`` for a
    result.
``pool_timeout`` (default 30)
    Seconds a call waits for a free pooled connection before it fails.
``max_message_size`` (default 16777216, 16 MiB)
    The largest message body, in bytes, that ``delay()`` may send; a larger one is refused
    (``MessageTooLarge``) before anything is written. At most 1073741823 (PostgreSQL's own
    limit for one value).

The pool opens connections as calls need them and keeps them for the next. Every
statement is sent with this client's clock skew (``skew_ms``): each statement reads the
database's clock through ``{now}`` (``now()`` plus the skew), so deadlines never depend on
a worker's clock, and tests can move one client's view of it forward without sleeping.

A call whose connection drops is tried again with back-off, logged once per outage. The
server may have run it before the drop (only its reply was lost): the statements are
written so that running one again is harmless (a publish sent again recognises its own
messages), except recording a group member, which the caller is told about instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import random
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict

from ..._notify import Notifier
from ...exceptions import BrokerUnavailable, ConfigurationError
from ...message import Delivery
from .. import hide_password
from ..queries import load_queries
from .pool import ConnectFailed, ConnectionPool, PoolExhausted

T = TypeVar("T")
Row = tuple[Any, ...]

logger = logging.getLogger("celeriac.postgres")

DEFAULT_SCHEMA = "celeriac"
CELERIAC_OPTIONS = ("schema", "max_connections", "pool_timeout", "max_message_size")
DEFAULT_MAX_CONNECTIONS = 10
DEFAULT_POOL_TIMEOUT_S = 30.0
DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024
FIELD_MAX = 2**30 - 1  # bytes; PostgreSQL refuses a longer value
DEFAULT_CONNECT_TIMEOUT_S = 10  # libpq's own default is to wait forever
RECONNECT_RETRIES = 4  # with back-off from 0.1 s up to 2 s
BACKOFF_CAP_S = 2.0
RECONNECT_LOG_EVERY_S = 60.0
NOTIFY_PAYLOAD_MAX = 8000  # bytes; pg_notify refuses longer payloads (those waiters poll)
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)

# celeriac.messages.state. The statements put them in as literals, never as parameters:
# PostgreSQL uses a partial index only when the query names the same constant.
QUEUED, RESERVED = 0, 1
SQL_FILES = ("transport.sql", "results.sql", "housekeeping.sql", "migrations.sql", "stats.sql")


# --- the URL ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PostgresTarget:
    """What a celeriac PostgreSQL URL names: the libpq URL and celeriac's options."""

    url: str
    conninfo: str  # celeriac's options removed
    safe_url: str  # the password hidden, for messages and logs
    host: str
    port: str
    dbname: str
    user: str
    schema: str
    max_connections: int
    pool_timeout_s: float
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE

    @property
    def data_id(self) -> tuple[str, str, str, str]:
        """Two targets with the same data_id read and write the same tables."""
        return (self.host, self.port, self.dbname, self.schema)

    @property
    def address(self) -> str:
        return f"{self.host or 'localhost'}:{self.port}"


def parse_url(url: str) -> PostgresTarget:
    parts = urlsplit(url)
    safe = hide_password(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigurationError(f"not a PostgreSQL URL: {safe!r}; write postgresql://user@host:5432/dbname")
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in query if k in CELERIAC_OPTIONS}
    rest = [(k, v) for k, v in query if k not in CELERIAC_OPTIONS]
    schema = ours.get("schema", DEFAULT_SCHEMA)
    if not _SCHEMA_NAME.fullmatch(schema):
        raise ConfigurationError(
            f"schema={schema!r} in {safe!r} is not a plain PostgreSQL name; use lower-case letters, digits "
            "and _ (at most 63, not starting with a digit), e.g. ?schema=celeriac"
        )
    max_connections = _int_option(ours, "max_connections", DEFAULT_MAX_CONNECTIONS, safe)
    pool_timeout_s = _float_option(ours, "pool_timeout", DEFAULT_POOL_TIMEOUT_S, safe)
    max_message_size = _int_option(ours, "max_message_size", DEFAULT_MAX_MESSAGE_SIZE, safe)
    if max_message_size > FIELD_MAX:
        raise ConfigurationError(
            f"max_message_size={max_message_size} in {safe!r} is over PostgreSQL's limit for one value "
            f"({FIELD_MAX} bytes); give a smaller number of bytes"
        )
    conninfo = urlunsplit(parts._replace(scheme="postgresql", query=urlencode(rest)))
    try:
        fields = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as exc:  # libpq's own check: a bad port, an unknown option
        raise ConfigurationError(f"invalid PostgreSQL URL {safe!r}: {str(exc).strip()}") from exc
    port = str(fields.get("port") or "5432")
    if not port.isdigit():
        raise ConfigurationError(f"invalid PostgreSQL URL {safe!r}: the port {port!r} is not a number")
    user = str(fields.get("user") or "")
    return PostgresTarget(
        url=url, conninfo=conninfo, safe_url=hide_password(conninfo), host=str(fields.get("host") or ""),
        port=port, dbname=str(fields.get("dbname") or user), user=user, schema=schema,
        max_connections=max_connections, pool_timeout_s=pool_timeout_s, max_message_size=max_message_size,
    )


def _int_option(options: Mapping[str, str], name: str, default: int, safe_url: str) -> int:
    raw = options.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigurationError(f"{name}={raw!r} in {safe_url!r} is not a positive whole number")
    return int(raw)


def _float_option(options: Mapping[str, str], name: str, default: float, safe_url: str) -> float:
    raw = options.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or math.isinf(value):
        raise ConfigurationError(f"{name}={raw!r} in {safe_url!r} is not a positive number of seconds")
    return value


# --- the statements -----------------------------------------------------------------


def results_channel(schema: str) -> str:
    """The NOTIFY channel of ready results (the payload is the task id): at most 63 bytes."""
    channel = f"celeriac_{schema}_results"
    return channel if len(channel) <= 63 else f"celeriac_{hashlib.md5(schema.encode()).hexdigest()}_results"


def sql_constants(schema: str) -> dict[str, object]:
    """What the ``{placeholders}`` of the ``.sql`` files stand for."""
    return {
        "schema": schema,
        "queued": QUEUED,
        "reserved": RESERVED,
        # The database's clock as this client sees it (see skew_ms).
        "now": "(now() + %(skew_ms)s::bigint * interval '1 millisecond')",
        "result_fence": "excluded.fencing_token > r.fencing_token OR (excluded.fencing_token = r.fencing_token"
                        " AND (excluded.is_ready OR NOT r.is_ready))",
        "results_channel": results_channel(schema),
        "max_payload": NOTIFY_PAYLOAD_MAX,
    }


def load_statements(schema: str) -> dict[str, str]:
    """Every named statement of the package's ``sql/*.sql`` files (not the migrations)."""
    found: dict[str, str] = {}
    for filename in SQL_FILES:
        for name, statement in load_queries("celeriac.servers.postgres", f"sql/{filename}",
                                            sql_constants(schema)).items():
            if name in found:
                raise ValueError(f"SQL block {name!r} is defined in two files")
            found[name] = statement
    return found


# An array parameter, ``%(name)s::type[]``: sent in psycopg's binary format by the pool
# (``binary_arrays``). psycopg's text dumper quotes every element in Python, about 15x the
# binary one's cost: 5,000 ids and bodies took ~0.25 s to dump as text, ~15 ms as binary.
_ARRAY_PARAM = re.compile(r"%\((\w+)\)s(?=::[a-z][a-z ]*\[\])")


def binary_arrays(statement: str) -> str:
    """The statement with its array parameters sent in binary (``%(name)b``).

    Only for psycopg's server-side binding (the pool's connections): a Django cursor binds
    on the client, which has no binary format, and is given the statement as written.
    """
    names = set(_ARRAY_PARAM.findall(statement))
    # Every mention of such a name (psycopg binds one format per name, even in a comment).
    return re.sub(r"%\((\w+)\)s", lambda m: f"%({m[1]})b" if m[1] in names else m[0], statement)


def to_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // _MS


def from_ms(ms: int) -> datetime:
    return _EPOCH + ms * _MS


# --- errors -------------------------------------------------------------------------


def explain_connect_error(exc: psycopg.Error, target: PostgresTarget) -> Exception:
    """A failed connect in celeriac's terms: what is wrong and how to fix it."""
    text = str(exc).strip()
    where = f"PostgreSQL at {target.address}"
    if "does not exist" in text and "database" in text:
        return BrokerUnavailable(
            f"{where} has no database {target.dbname!r} (from {target.safe_url}); create it "
            f"(createdb -h {target.host or 'localhost'} -p {target.port} {target.dbname}, or CREATE DATABASE "
            f"{target.dbname}) or fix the database name in the URL"
        )
    if "Connection refused" in text or "No such file or directory" in text:
        return BrokerUnavailable(
            f"cannot connect to {where}: the connection was refused ({target.safe_url}). Is the server running "
            "and listening there? Start it (e.g. `sudo systemctl start postgresql`, `pg_ctl start`, or "
            "`docker run -p 5432:5432 -e POSTGRES_PASSWORD=... postgres`) or fix the host and port in the URL"
        )
    if "authentication failed" in text or ("role" in text and "does not exist" in text):
        return BrokerUnavailable(
            f"{where} refused the login of {target.user or 'the default user'!r}: {_last_line(text)}; fix the "
            "user and password in the URL, or create the role"
        )
    if "timeout" in text.lower():
        return BrokerUnavailable(
            f"{where} did not answer within the connect timeout ({target.safe_url}); check that the host is "
            "reachable and the port open, or raise ?connect_timeout="
        )
    return BrokerUnavailable(f"cannot connect to {where} ({target.safe_url}): {_last_line(text)}")


def _last_line(text: str) -> str:
    """libpq's reason without the "connection to server at ... failed:" preamble."""
    reason = text.splitlines()[0] if text else text
    return reason.rsplit("failed: ", 1)[-1].strip()


def explain_privilege_error(exc: psycopg.Error, target: PostgresTarget) -> ConfigurationError:
    who = target.user or "the connecting role"
    return ConfigurationError(
        f"the PostgreSQL role {who!r} may not create celeriac's schema {target.schema!r} in database "
        f"{target.dbname!r} ({_last_line(str(exc))}). Either GRANT CREATE ON DATABASE {target.dbname} TO {who}, "
        f"or have a role that may run `celeriac migrate` once (then {who} needs USAGE on the schema and "
        "SELECT, INSERT, UPDATE, DELETE on its tables)"
    )


_last_reconnect_log: dict[str, float] = {}
_log_lock = threading.Lock()


def log_outage_once(safe_url: str, what: str, exc: BaseException) -> None:
    """Log the first failure of an outage, at most once a minute per server."""
    now = time.monotonic()
    with _log_lock:
        if now - _last_reconnect_log.get(safe_url, -math.inf) < RECONNECT_LOG_EVERY_S:
            return
        _last_reconnect_log[safe_url] = now
    logger.warning("lost the connection to PostgreSQL at %s (%s: %s); reconnecting with back-off",
                   safe_url, what, str(exc).strip() or type(exc).__name__)


def backoff_s(failures: int) -> float:
    return float(min(BACKOFF_CAP_S, 0.1 * 2 ** (failures - 1)) * random.uniform(0.5, 1.0))


# --- wake-ups within this process ---------------------------------------------------

_notifiers: dict[tuple[str, str, str, str], Notifier] = {}
_notifiers_lock = threading.Lock()


def notifier_for(data_id: tuple[str, str, str, str]) -> Notifier:
    """Wake-ups for waiters in this process: keys ``queue:<name>`` and ``result:<id>``.

    A publish wakes this process's waiters at once; the listener (``listener.py``) turns
    the database's notifications, from any process, into the same wake-ups.
    """
    with _notifiers_lock:
        return _notifiers.setdefault(data_id, Notifier())


def fenced(deliveries: Sequence[Delivery]) -> dict[str, Any]:
    """The parameters of a statement fenced by token (ack, renew, release): ids and their tokens."""
    return {"task_ids": [d.task_id for d in deliveries], "tokens": [d.fencing_token for d in deliveries]}


def queue_key(queue: str) -> str:
    return f"queue:{queue}"


def result_key(task_id: str) -> str:
    return f"result:{task_id}"


# Statements whose commit need not wait for the WAL to reach the disk: the event log and
# the per-minute counts are a view for people, and a server crash may lose their last
# fraction of a second. Sent as BEGIN; SET LOCAL synchronous_commit = off; ...; COMMIT in
# one pipeline (one round trip), they cost a worker's flush no disk wait.
NOT_DURABLE = frozenset({"add_stats"})
# Statements that read what a reserve changed (leases, dead letters, queue counts): sent
# only once every lease this client handed out has committed, so a caller reads its own
# writes (``lease``). The worker's own calls on its deliveries wait for theirs (transport.py).
# Statements whose rows are handed out before their commit (``lease``): each row leases
# a message.
LEASES = frozenset({"reserve"})
READS_LEASES = frozenset({"queue_depths", "queue_stats", "purge", "requeue_dead_letters", "dead_letters",
                          "count_dead_letters"})


class LeasedRows(list[Row]):
    """A lease statement's rows, and how its commit went (see ``PostgresConnection.lease``)."""

    def __init__(self, rows: list[Row], committed: asyncio.Future[bool]) -> None:
        super().__init__(rows)
        self.committed = committed


# --- the connection -----------------------------------------------------------------


class PostgresConnection:
    """One connection pool and the statements, shared by a broker and a store on one URL.

    Opened and closed by reference count: the broker and a store sharing it each open it
    once, and the pool closes when the last one closes. The first open checks the server
    (with an error that says how to fix what is wrong) and applies the migrations.
    """

    def __init__(self, url: str) -> None:
        self.target = parse_url(url)
        self.statements = load_statements(self.target.schema)
        # What the pool sends: the same statements with binary array parameters.
        self.pool_statements = {name: binary_arrays(text) for name, text in self.statements.items()}
        self.notifier = notifier_for(self.target.data_id)
        self.skew_ms = 0  # added to the database's clock in every statement (skew_clock)
        self._leasing: set[asyncio.Future[bool]] = set()  # lease transactions still committing
        self._pool: ConnectionPool | None = None
        self._users = 0
        self._lock = asyncio.Lock()
        self._failing = False  # a call failed on a lost connection and none succeeded since
        # Imported here: they take the connection itself and use its helpers.
        from .handoff import Handoffs
        from .housekeeping import Housekeeping
        from .listener import Listener

        self.housekeeping = Housekeeping(self)
        self.handoffs = Handoffs(self)
        self.listener = Listener(self)

    @property
    def connect_kwargs(self) -> dict[str, Any]:
        fields = conninfo_to_dict(self.target.conninfo)
        kwargs: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in fields:
            kwargs["connect_timeout"] = DEFAULT_CONNECT_TIMEOUT_S
        if "application_name" not in fields:
            kwargs["application_name"] = "celeriac"
        return kwargs

    async def _connect(self) -> AsyncConnection[Row]:
        conn = await AsyncConnection.connect(self.target.conninfo, **self.connect_kwargs)
        # psycopg prepares a statement run five times on a connection; PostgreSQL would then
        # still plan the big ones (reserve, ack) again at every run, because their custom
        # plans look cheaper than the generic one: about 1 ms of planning for 0.3 ms of work
        # on an idle worker's wake-up. The queue's statements are made for their indexes, so
        # the generic plan is as good, and planned once per connection.
        with contextlib.suppress(psycopg.errors.UndefinedObject):  # PostgreSQL < 12 plans as before
            await conn.execute("SET plan_cache_mode = force_generic_plan")
        return conn

    async def connect_one(self) -> AsyncConnection[Row]:
        """A connection of its own (autocommit), outside the pool; errors say how to fix them."""
        try:
            return await self._connect()
        except psycopg.OperationalError as exc:
            raise explain_connect_error(exc, self.target) from exc

    async def open(self) -> None:
        async with self._lock:
            if self._pool is None:
                from .migrations import migrate

                first = await self.connect_one()
                try:
                    await migrate(first, self.target, self.statements)
                except BaseException:
                    await first.close()
                    raise
                pool = ConnectionPool(self._connect, self.target.max_connections, self.target.pool_timeout_s)
                pool.put_idle(first)  # checked, and migrated with: the first call's connection
                self._pool = pool
            self._users += 1

    async def close(self) -> None:
        async with self._lock:
            self._users -= 1
            if self._users <= 0 and self._pool is not None:
                await self.handoffs.close_all()
                pool, self._pool = self._pool, None
                self._users = 0
                await self.listener.close()
                await pool.close()

    @property
    def pool(self) -> ConnectionPool:
        if self._pool is None:
            raise BrokerUnavailable(
                f"the PostgreSQL connection to {self.target.safe_url} is not open; call connect() first"
            )
        return self._pool

    async def run(self, what: str, work: Callable[[AsyncConnection[Row]], Awaitable[T]], *,
                  retry: bool = True) -> T:
        """Run ``work`` on a pooled connection; a lost connection is retried with back-off.

        ``what`` names the call in errors. Without ``retry`` a call that lost its
        connection raises ``BrokerUnavailable`` at once (the server may have run it).
        """
        failures = 0
        while True:
            lost: psycopg.OperationalError | None = None
            sent = True  # whether the server may have run it
            try:
                async with self.pool.connection() as conn:
                    try:
                        result = await work(conn)
                    except psycopg.OperationalError as exc:
                        if not conn.broken:
                            raise  # the statement's own error (cancelled, a lock timeout): not a lost connection
                        lost = exc
            except PoolExhausted:
                raise BrokerUnavailable(
                    f"the {what} call waited {self.target.pool_timeout_s:g} s for a free connection to PostgreSQL "
                    f"at {self.target.safe_url}: all {self.pool.max_size} of the pool's connections stayed busy. "
                    "Raise ?max_connections= in the URL, or look for long calls holding them"
                ) from None
            except ConnectFailed as exc:
                assert isinstance(exc.__cause__, psycopg.OperationalError)
                lost, sent = exc.__cause__, False
            if lost is None:
                if self._failing:
                    self._failing = False
                    logger.warning("PostgreSQL at %s answers again", self.target.safe_url)
                return result
            failures += 1
            if failures == 1:
                self._failing = True
                log_outage_once(self.target.safe_url, what, lost)
                # The other idle connections are most likely dead too (a server restart):
                # drop them now rather than failing on each in turn.
                await self.pool.discard_idle()
            if failures > RECONNECT_RETRIES and not sent:
                raise explain_connect_error(lost, self.target) from lost
            if failures > RECONNECT_RETRIES or (sent and not retry):
                raise BrokerUnavailable(
                    f"PostgreSQL at {self.target.safe_url} did not answer the {what} call "
                    f"({str(lost).strip()}); it may or may not have taken effect. Check that the server is "
                    "running and reachable"
                ) from lost
            await asyncio.sleep(backoff_s(failures))

    def params(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {**values, "skew_ms": self.skew_ms}

    async def leases_committed(self) -> None:
        """Return once every lease handed out so far has committed (or failed to)."""
        if self._leasing:
            await asyncio.wait(set(self._leasing))

    async def fetch(self, name: str, values: Mapping[str, Any], *, retry: bool = True) -> list[Row]:
        """The rows of the named statement (of a lease statement: ``LeasedRows``, before its commit)."""
        statement = self.pool_statements[name]
        if name in READS_LEASES:
            await self.leases_committed()
        if name in LEASES:
            rows, committed = await self.lease(name, values)
            return LeasedRows(rows, committed)

        async def work(conn: AsyncConnection[Row]) -> list[Row]:
            cursor = await conn.execute(statement, self.params(values))
            return await cursor.fetchall()

        return await self.run(name, work, retry=retry)

    async def lease(self, name: str, values: Mapping[str, Any]) -> tuple[list[Row], asyncio.Future[bool]]:
        """The rows of the named statement, before its transaction has committed.

        One round trip brings the rows: the statement and a flush request, pipelined. A
        pipeline's statements up to its sync run as one implicit transaction, so the rows
        come before the commit, which the sync at the pipeline's end makes while the caller
        uses the rows (no BEGIN and COMMIT of its own: two calls fewer on an idle worker's
        wake-up). The second value says how it went: True once committed, False if it did
        not (the connection dropped: the server rolled it back, or may have; nobody may act
        on those rows as committed). Until then the rows stay locked by this transaction, so
        no other statement can take or change them. With no rows (nothing leased, nothing
        worth handing out early) the empty list comes after the commit instead. A
        connection lost before the rows arrived is retried as any call (nothing was
        committed).
        """
        statement = self.pool_statements[name]
        handed: asyncio.Future[list[Row]] = asyncio.get_running_loop().create_future()

        async def work(conn: AsyncConnection[Row]) -> bool:
            early = False
            try:
                async with conn.pipeline():
                    try:
                        cursor = await conn.execute(statement, self.params(values))
                        rows = await cursor.fetchall()  # a flush request: the rows, with no commit yet
                        if handed.cancelled():
                            raise asyncio.CancelledError  # the caller left: nobody takes these rows
                    except BaseException:
                        # The pipeline's sync would commit what ran: roll it back first.
                        with contextlib.suppress(psycopg.Error):
                            await conn.execute("ROLLBACK")
                        raise
                    if rows:
                        early = True
                        handed.set_result(rows)
            except psycopg.Error:
                if not early:
                    raise  # nothing handed out: run() retries a lost connection as usual
                return False
            if not early and not handed.done():
                handed.set_result(rows)
            return True

        def ended(done: asyncio.Future[bool]) -> None:
            self._leasing.discard(done)
            if not handed.done():  # it ended before handing out rows: its error is the caller's
                if done.cancelled():
                    handed.cancel()
                else:
                    handed.set_exception(done.exception() or AssertionError("the lease ended without rows"))

        committed = asyncio.ensure_future(self.run(name, work))
        self._leasing.add(committed)
        committed.add_done_callback(ended)
        try:
            return await handed, committed
        except asyncio.CancelledError:
            # Cancelled while waiting, ``handed`` is cancelled with it, and ``work`` rolls
            # back whatever it leased; rows already handed out commit (the caller dropped them).
            if handed.cancelled():
                committed.cancel()
            raise

    async def execute(self, name: str, values: Mapping[str, Any], *, retry: bool = True) -> int:
        """The named statement's row count."""
        statement = self.pool_statements[name]
        if name in READS_LEASES:
            await self.leases_committed()

        async def work(conn: AsyncConnection[Row]) -> int:
            if name in NOT_DURABLE:
                async with conn.pipeline():
                    await conn.execute("BEGIN")
                    await conn.execute("SET LOCAL synchronous_commit = off")
                    cursor = await conn.execute(statement, self.params(values))
                    await conn.execute("COMMIT")
                return cursor.rowcount
            cursor = await conn.execute(statement, self.params(values))
            return cursor.rowcount

        return await self.run(name, work, retry=retry)

    def notify_queues(self, queues: Iterable[str]) -> None:
        for queue in set(queues):
            self.notifier.notify(queue_key(queue))
