"""PostgreSQL only: migrations, connection errors, LISTEN/NOTIFY wake-ups, hand-offs, schemas, housekeeping.

The broker and store contracts run on PostgreSQL in tests/contract; these are the parts
only this server has. Each test gets a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import re
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from celeriac._notify import Notifier
from celeriac.exceptions import BrokerUnavailable, ConfigurationError, DuplicateTaskError
from celeriac.message import STARTED, SUCCESS, ResultRecord, now_ms
from celeriac.servers import BrokerOptions, OutgoingMessage, create_broker, open_server

from ..conftest import POSTGRES_URL, postgres_test_url

psycopg = pytest.importorskip("psycopg")

from psycopg import sql as pgsql  # noqa: E402

from celeriac.servers.postgres import PostgresServer  # noqa: E402
from celeriac.servers.postgres import handoff as pg_handoff  # noqa: E402
from celeriac.servers.postgres import results as pg_results  # noqa: E402
from celeriac.servers.postgres import transport as pg_transport  # noqa: E402
from celeriac.servers.postgres.connection import PostgresConnection, load_statements, parse_url  # noqa: E402
from celeriac.servers.postgres.migrations import latest_version, lock_key, migrate  # noqa: E402
from celeriac.servers.postgres.results import PostgresResultStore  # noqa: E402
from celeriac.servers.postgres.transport import PostgresBroker, publish_params  # noqa: E402

ROOT = Path(__file__).parent.parent.parent
LEASE_MS = 60_000
# The wake-up tests wait without a deadline and with the safety poll set to an hour, so
# only a notification can end the wait; this bound only turns a missing one into a failure.
WOKEN_WITHIN_S = 60


@pytest.fixture
def url() -> Iterator[str]:
    with postgres_test_url("pg") as found:
        # Named after the schema, so a test can find (and kill) its own server processes.
        yield f"{found}&application_name={schema_of(found)}"


@pytest.fixture
async def broker(url: str) -> AsyncIterator[PostgresBroker]:
    b = PostgresBroker(url, BrokerOptions(result_expires_s=60, revoked_ttl_s=60))
    await b.connect()
    yield b
    await b.close()


def schema_of(url: str) -> str:
    return parse_url(url).schema


def sql(query: str, *params: Any) -> list[tuple[Any, ...]]:
    """One statement on a connection of the test's own."""
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        cursor = conn.execute(query, params or None)
        return cursor.fetchall() if cursor.description else []


async def apart(broker: PostgresBroker) -> PostgresBroker:
    """A second client of the same schema that wakes nobody in this process directly, as if
    it ran in another process: only the database's notifications can carry its writes."""
    other = PostgresBroker(broker.url, broker.options, PostgresConnection(broker.url))
    other.connection.notifier = Notifier()
    await other.connect()
    return other


async def first_look_done(connection: PostgresConnection, statement: str, times: int = 1) -> asyncio.Event:
    """An event set once ``statement`` has run ``times`` on ``connection`` (the waiter then waits)."""
    ran = asyncio.Event()
    fetch = connection.fetch
    count = 0

    async def watched(name: str, values: Any, *, retry: bool = True) -> Any:
        nonlocal count
        rows = await fetch(name, values, retry=retry)
        if name == statement:
            count += 1
            if count >= times:
                ran.set()
        return rows

    connection.fetch = watched  # type: ignore[method-assign]
    return ran


# --- migrations ---------------------------------------------------------------------


async def test_first_use_makes_the_schema_and_records_every_migration(broker: PostgresBroker) -> None:
    schema = schema_of(broker.url)
    versions = sql(f"SELECT version, name FROM {schema}.migrations ORDER BY version")
    assert [v for v, _ in versions] == list(range(1, latest_version() + 1))
    assert versions[0] == (1, "initial")
    tables = {r[0] for r in sql("SELECT tablename FROM pg_tables WHERE schemaname = %s", schema)}
    assert {"messages", "dead_letters", "results", "group_members", "unique_ids", "revoked"} <= tables


async def test_migrating_again_changes_nothing(broker: PostgresBroker) -> None:
    schema = schema_of(broker.url)
    before = sql(f"SELECT version, applied_at FROM {schema}.migrations")
    again = PostgresBroker(broker.url)
    await again.connect()
    await again.close()
    conn = await broker.connection.connect_one()
    try:
        assert await migrate(conn, broker.connection.target, broker.connection.statements) == []
    finally:
        await conn.close()
    assert sql(f"SELECT version, applied_at FROM {schema}.migrations") == before


def test_two_processes_starting_at_once_apply_each_migration_once(url: str) -> None:
    schema = schema_of(url)
    key = lock_key(schema) & 0xFFFF_FFFF_FFFF_FFFF
    script = textwrap.dedent(f"""
        import asyncio
        from celeriac.servers.postgres.transport import PostgresBroker

        async def main():
            broker = PostgresBroker({url!r})
            await broker.connect()
            print(await broker.queue_depths())
            await broker.close()

        asyncio.run(main())
    """)
    with psycopg.connect(POSTGRES_URL, autocommit=True) as holder:
        # Holding the migrations' lock makes both processes find the schema missing and
        # queue up on the lock, so they really do race for it once it is let go.
        holder.execute("SELECT pg_advisory_lock(%s)", [lock_key(schema)])
        procs = [subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                waiting = sql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                              " AND classid = %s::oid AND objid = %s::oid AND objsubid = 1",
                              key >> 32, key & 0xFFFF_FFFF)[0][0]
                if waiting == 2 or any(p.poll() is not None for p in procs):
                    break
                time.sleep(0.05)
            assert waiting == 2, [p.communicate() for p in procs]
        finally:
            holder.execute("SELECT pg_advisory_unlock(%s)", [lock_key(schema)])
        outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert all(out.strip() == "{}" for out, _ in outputs), outputs
    assert sql(f"SELECT count(*), max(version) FROM {schema}.migrations") == [(latest_version(), latest_version())]


def test_migrate_command_prints_the_sql_dry_and_applies_it_once(url: str) -> None:
    from celeriac.cli import main

    schema = schema_of(url)
    runner = CliRunner()
    dry = runner.invoke(main, ["-b", url, "migrate", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"CREATE TABLE {schema}.messages" in dry.output and "0001_initial" in dry.output
    assert sql("SELECT count(*) FROM pg_namespace WHERE nspname = %s", schema) == [(0,)]  # nothing ran
    applied = runner.invoke(main, ["-b", url, "migrate"])
    assert applied.exit_code == 0, applied.output
    assert f"applied 0001_initial to schema {schema}" in applied.output
    again = runner.invoke(main, ["-b", url, "migrate"])
    assert again.exit_code == 0 and "up to date" in again.output
    dry_again = runner.invoke(main, ["-b", url, "migrate", "--dry-run"])
    assert "up to date" in dry_again.output and "CREATE TABLE" not in dry_again.output


# --- errors that say how to fix them ---------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_nothing_listening_names_the_address_and_how_to_start_a_server() -> None:
    port = free_port()
    broker = PostgresBroker(f"postgresql://postgres@127.0.0.1:{port}/test")
    with pytest.raises(BrokerUnavailable) as caught:
        await broker.connect()
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message and "refused" in message and "Start it" in message


async def test_a_missing_database_says_how_to_create_it() -> None:
    name = f"celeriac_missing_{uuid.uuid4().hex[:8]}"
    base = POSTGRES_URL.rsplit("/", 1)[0]
    with pytest.raises(BrokerUnavailable, match=f"no database '{name}'.*createdb"):
        await PostgresBroker(f"{base}/{name}").connect()


@pytest.mark.parametrize(("bad", "says"), [
    ("postgresql://127.0.0.1:port/test", "invalid PostgreSQL URL"),
    ("postgresql://127.0.0.1/test?schema=Bad-Name", "not a plain PostgreSQL name"),
    ("postgresql://127.0.0.1/test?schema=", "not a plain PostgreSQL name"),
    ("postgresql://127.0.0.1/test?no_such_option=1", "invalid PostgreSQL URL"),
    ("postgresql://127.0.0.1/test?max_connections=0", "max_connections"),
    ("postgresql://127.0.0.1/test?pool_timeout=soon", "pool_timeout"),
])
def test_a_bad_url_is_refused_before_connecting(bad: str, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        create_broker(bad, BrokerOptions())


def test_the_password_stays_out_of_errors() -> None:
    with pytest.raises(ConfigurationError) as caught:
        create_broker("postgresql://me:s3cret@127.0.0.1/test?schema=Bad", BrokerOptions())
    assert "s3cret" not in str(caught.value)


async def test_a_role_that_may_not_create_the_schema_is_told_what_to_grant(url: str) -> None:
    role = f"celeriac_t_{uuid.uuid4().hex[:10]}"
    sql(f"CREATE ROLE {role} LOGIN")
    try:
        as_role = url.replace("postgresql://postgres@", f"postgresql://{role}@")
        with pytest.raises(ConfigurationError) as caught:
            await PostgresBroker(as_role).connect()
        message = str(caught.value)
        assert "GRANT CREATE ON DATABASE" in message and "celeriac migrate" in message
        assert schema_of(url) in message
    finally:
        sql(f"DROP ROLE {role}")


async def test_an_exhausted_pool_says_so(url: str) -> None:
    broker = PostgresBroker(f"{url}&max_connections=1&pool_timeout=0.2")
    await broker.connect()
    try:
        async with broker.connection.pool.connection():
            with pytest.raises(BrokerUnavailable, match="max_connections"):
                await broker.queue_depths()
        assert await broker.queue_depths() == {}
    finally:
        await broker.close()


async def test_a_call_cancelled_mid_statement_leaves_the_pool_usable(broker: PostgresBroker) -> None:
    async def sleep(conn: Any) -> None:
        await conn.execute("SELECT pg_sleep(600)")

    call = asyncio.create_task(broker.connection.run("sleep", sleep))
    while not sql("SELECT 1 FROM pg_stat_activity WHERE application_name = %s AND query LIKE 'SELECT pg_sleep%%'",
                  schema_of(broker.url)):
        await asyncio.sleep(0.02)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await broker.publish([OutgoingMessage("after", "q", b"{}")])
    assert await broker.queue_depths() == {"q": 1}
    assert not sql("SELECT 1 FROM pg_stat_activity WHERE application_name = %s AND query LIKE 'SELECT pg_sleep%%'"
                   " AND state = 'active'", schema_of(broker.url))


async def test_a_connection_killed_under_the_pool_is_replaced_and_logged_once(
    broker: PostgresBroker, caplog: pytest.LogCaptureFixture
) -> None:
    await broker.publish([OutgoingMessage("a", "q", b"{}")])
    sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
        schema_of(broker.url))
    with caplog.at_level(logging.WARNING, logger="celeriac.postgres"):
        assert await broker.queue_depths() == {"q": 1}
        assert await broker.queue_depths() == {"q": 1}
    lost = [r for r in caplog.records if "lost the connection" in r.getMessage()]
    assert len(lost) == 1


# --- waking on notifications ---------------------------------------------------------


# Several queues: a reserve once waited for a notice on every one of them (or the safety
# poll), so a worker with -Q a,b took 5 s to start a task sent to a.
@pytest.mark.parametrize("queues", [["q"], ["a", "q", "c"]], ids=["one-queue", "several-queues"])
async def test_an_idle_reserve_wakes_on_a_publish_from_another_process(
    broker: PostgresBroker, monkeypatch: pytest.MonkeyPatch, queues: list[str]
) -> None:
    monkeypatch.setattr(pg_transport, "SAFETY_POLL_S", 3600.0)  # only a notification can wake it
    publisher = await apart(broker)
    try:
        looked = await first_look_done(broker.connection, "reserve")
        waiting = asyncio.create_task(broker.reserve(queues, 5, lease_ms=LEASE_MS, worker_id="w", timeout_s=3600))
        await looked.wait()
        await publisher.publish([OutgoingMessage("wake", "q", b"{}")])
        assert [d.task_id for d in await asyncio.wait_for(waiting, WOKEN_WITHIN_S)] == ["wake"]
    finally:
        await publisher.close()


async def test_a_waiting_get_wakes_on_a_result_written_by_another_process(
    broker: PostgresBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_results, "SAFETY_POLL_S", (3600.0, 3600.0))
    store = PostgresResultStore(broker.url, 60, broker.connection)
    await store.connect()
    writer = await apart(broker)
    writer_store = PostgresResultStore(broker.url, 60, writer.connection)
    await writer_store.connect()
    try:
        await store.store([ResultRecord(task_id="t", state=STARTED, fencing_token=1)])
        # The first look comes before listening; the second, once listening, precedes the wait.
        looked = await first_look_done(broker.connection, "fetch", times=2)
        waiting = asyncio.create_task(store.wait_ready("t", None))
        await looked.wait()
        await writer_store.store([ResultRecord(task_id="t", state=SUCCESS, result=7, fencing_token=1)])
        got = await asyncio.wait_for(waiting, WOKEN_WITHIN_S)
        assert got is not None and got.result == 7
        # Nobody waits any more, and no reserve waited here: the listener has stopped.
        listener = broker.connection.listener
        assert listener._result_waiters == 0 and listener._conn is None and not listener._listening
    finally:
        await writer_store.close()
        await writer.close()
        await store.close()


async def test_the_listener_comes_back_after_its_connection_is_killed(
    broker: PostgresBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_transport, "SAFETY_POLL_S", 3600.0)
    publisher = await apart(broker)
    try:
        assert await broker.reserve(["q"], 5, lease_ms=LEASE_MS, worker_id="w", timeout_s=0.05) == []
        listener = broker.connection.listener
        assert listener.live and listener._conn is not None
        pid = listener._conn.info.backend_pid
        sql("SELECT pg_terminate_backend(%s)", pid)
        while not (listener.live and listener._conn is not None and listener._conn.info.backend_pid != pid):
            await asyncio.sleep(0.02)  # it notices, reconnects and listens again
        looked = await first_look_done(broker.connection, "reserve")
        waiting = asyncio.create_task(broker.reserve(["q"], 5, lease_ms=LEASE_MS, worker_id="w", timeout_s=3600))
        await looked.wait()
        await publisher.publish([OutgoingMessage("after", "q", b"{}")])
        assert [d.task_id for d in await asyncio.wait_for(waiting, WOKEN_WITHIN_S)] == ["after"]
    finally:
        await publisher.close()


# --- hand-off: a new message given to a waiting worker by the publish itself (handoff.py) ---


@pytest.fixture
async def publisher(broker: PostgresBroker, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[PostgresBroker]:
    """Another process's client; and only a notification, never the safety poll, wakes a reserve here."""
    monkeypatch.setattr(pg_transport, "SAFETY_POLL_S", 3600.0)
    other = await apart(broker)
    yield other
    await other.close()


def rows(broker: PostgresBroker) -> dict[str, tuple[Any, ...]]:
    """task_id -> (state, delivery_count, worker_id, ms of lease left) of every message."""
    found = sql(f"SELECT task_id, state, delivery_count, worker_id, "
                f"(extract(epoch FROM lease_until - now()) * 1000)::bigint "
                f"FROM {schema_of(broker.url)}.messages")
    return {row[0]: tuple(row[1:]) for row in found}


def offer(broker: PostgresBroker, worker_id: str, *, channel: str, free: int = 1, lease_ms: int = 5000) -> None:
    """An offer as reserve_status writes it, for a worker that is not this test's reserve."""
    sql(f"INSERT INTO {schema_of(broker.url)}.waiters VALUES (%s, %s, '{{q}}', %s, %s, now() + interval '1 hour')",
        worker_id, channel, free, lease_ms)


async def until(condition: Any, what: str) -> None:
    for _ in range(int(WOKEN_WITHIN_S / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"still not {what}")


async def waiting_reserve(broker: PostgresBroker, max_count: int = 5, lease_ms: int = LEASE_MS) -> asyncio.Task[Any]:
    """A reserve of worker ``w`` that has offered its slots and waits (only a notice ends it)."""
    offered = await first_look_done(broker.connection, "reserve_status")
    task = asyncio.create_task(broker.reserve(["q"], max_count, lease_ms=lease_ms, worker_id="w", timeout_s=3600))
    await offered.wait()
    return task


async def test_a_waiting_worker_is_handed_the_message_leased_to_it(
    broker: PostgresBroker, publisher: PostgresBroker
) -> None:
    reserves = 0
    fetch = broker.connection.fetch

    async def counted(name: str, values: Any, *, retry: bool = True) -> Any:
        nonlocal reserves
        reserves += name == "reserve"
        return await fetch(name, values, retry=retry)

    broker.connection.fetch = counted  # type: ignore[method-assign]
    waiting = await waiting_reserve(broker)
    await publisher.publish([OutgoingMessage("t1", "q", b'{"a": 1}')])
    [got] = await asyncio.wait_for(waiting, WOKEN_WITHIN_S)
    assert (got.task_id, got.queue, got.body, got.fencing_token, got.is_revoked) == ("t1", "q", b'{"a": 1}', 1, False)
    assert reserves == 1  # the look before the wait; the message itself took no reserve
    state, token, worker, _ = rows(broker)["t1"]
    assert (state, token, worker) == (1, 1, "w")
    # The short hand-off lease is extended to the worker's own, and acks wait for that.
    assert await broker._leases.settle([got], forget=False) == set()
    assert rows(broker)["t1"][3] > pg_handoff.HANDOFF_LEASE_MS
    assert await broker.ack([got]) == []
    assert rows(broker) == {}


async def test_a_lease_shorter_than_the_hand_off_margin_still_takes_the_hand_off(
    broker: PostgresBroker, publisher: PostgresBroker
) -> None:
    waiting = await waiting_reserve(broker, lease_ms=600)  # the hand-off lease is 600 ms too
    await publisher.publish([OutgoingMessage("short", "q", b"{}")])
    [got] = await asyncio.wait_for(waiting, WOKEN_WITHIN_S)
    assert (got.task_id, got.fencing_token) == ("short", 1)


async def test_a_revoked_id_is_handed_with_its_revocation(broker: PostgresBroker, publisher: PostgresBroker) -> None:
    await broker.revoke(["doomed"])
    waiting = await waiting_reserve(broker)
    await publisher.publish([OutgoingMessage("doomed", "q", b"{}")])
    [got] = await asyncio.wait_for(waiting, WOKEN_WITHIN_S)
    assert got.is_revoked is True


@pytest.mark.parametrize("message", [
    OutgoingMessage("later", "q", b"{}", eta_ms=2**41),
    OutgoingMessage("large", "q", b"x" * (pg_handoff.BODY_MAX + 1)),
], ids=["scheduled", "too-large-for-a-notice"])
async def test_what_cannot_travel_in_a_notice_goes_through_the_queue(
    broker: PostgresBroker, publisher: PostgresBroker, message: OutgoingMessage
) -> None:
    offer(broker, "w2", channel=broker.connection.handoffs.channel)
    await publisher.publish([message])
    assert rows(broker)[message.task_id][:3] == (0, 0, None)


async def test_a_worker_is_never_handed_more_than_it_offered(
    broker: PostgresBroker, publisher: PostgresBroker
) -> None:
    offer(broker, "w2", channel="nobody_listens", free=2)
    for i in range(4):
        await publisher.publish([OutgoingMessage(f"m{i}", "q", b"{}")])
    states = rows(broker)
    assert sorted(task_id for task_id, row in states.items() if row[2] == "w2") == ["m0", "m1"]
    assert [states[f"m{i}"][0] for i in (2, 3)] == [0, 0]


async def test_a_message_handed_while_no_reserve_waits_goes_back_to_its_queue(
    broker: PostgresBroker, publisher: PostgresBroker
) -> None:
    assert await broker.connection.listener.listen_queues(["q"])  # the hand-off channel too
    offer(broker, "w", channel=broker.connection.handoffs.channel)
    await publisher.publish([OutgoingMessage("orphan", "q", b"{}")])
    await until(lambda: rows(broker)["orphan"][0] == 0, "released")
    [got] = await broker.reserve(["q"], 5, lease_ms=LEASE_MS, worker_id="w", timeout_s=1)
    assert (got.task_id, got.fencing_token) == ("orphan", 2)


async def test_more_than_a_reserve_asked_for_is_released(broker: PostgresBroker, publisher: PostgresBroker) -> None:
    waiting = await waiting_reserve(broker, max_count=1)
    # Another slot offered under the same worker id, as a race with a withdrawal would leave it.
    sql(f"UPDATE {schema_of(broker.url)}.waiters SET free = 3 WHERE worker_id = 'w'")
    for task_id in ("a", "b"):
        await publisher.publish([OutgoingMessage(task_id, "q", b"{}")])
    got = await asyncio.wait_for(waiting, WOKEN_WITHIN_S)
    assert len(got) == 1
    other = ({"a", "b"} - {got[0].task_id}).pop()
    await until(lambda: rows(broker)[other][0] == 0, "released")


async def test_a_message_handed_to_a_worker_that_died_runs_after_the_short_lease(
    broker: PostgresBroker, publisher: PostgresBroker
) -> None:
    offer(broker, "dead", channel="nobody_listens", lease_ms=300)
    await publisher.publish([OutgoingMessage("stranded", "q", b"{}")])
    assert rows(broker)["stranded"][:3] == (1, 1, "dead")
    got = await asyncio.wait_for(
        broker.reserve(["q"], 5, lease_ms=LEASE_MS, worker_id="alive", timeout_s=WOKEN_WITHIN_S), WOKEN_WITHIN_S)
    assert [(d.task_id, d.fencing_token) for d in got] == [("stranded", 2)]


async def test_a_reserve_withdraws_its_offer_and_closing_removes_it(broker: PostgresBroker) -> None:
    waiters = f"SELECT worker_id, free FROM {schema_of(broker.url)}.waiters"
    assert await broker.reserve(["q"], 7, lease_ms=LEASE_MS, worker_id="w", timeout_s=0.2) == []
    assert sql(waiters) == [("w", 7)]
    sql(f"INSERT INTO {schema_of(broker.url)}.messages (task_id, queue, body, available_at) "
        "VALUES ('x', 'q', '', now())")
    assert [d.task_id for d in await broker.reserve(["q"], 7, lease_ms=LEASE_MS, worker_id="w", timeout_s=0.2)] == ["x"]
    assert sql(waiters) == [("w", 0)]
    assert await broker.reserve(["q"], 7, lease_ms=LEASE_MS, worker_id="w", timeout_s=0.2) == []
    await broker.close()
    assert sql(waiters) == []
    await broker.connect()  # for the fixture's close


# --- the schema option, and what the statements promise ----------------------------


async def test_the_schema_option_keeps_apps_apart(url: str) -> None:
    other_schema = f"t_pg_other_{uuid.uuid4().hex[:8]}"
    other_url = url.replace(f"schema={schema_of(url)}", f"schema={other_schema}")
    first, second = PostgresBroker(url), PostgresBroker(other_url)
    await first.connect()
    await second.connect()
    try:
        await first.publish([OutgoingMessage("same-id", "q", b"first")])
        await second.publish([OutgoingMessage("same-id", "q", b"second")])  # no duplicate across schemas
        [d] = await second.reserve(["q"], 5, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
        assert d.body == b"second"
        assert await first.queue_depths() == {"q": 1}
    finally:
        await first.close()
        await second.close()
        sql(f"DROP SCHEMA IF EXISTS {other_schema} CASCADE")


def test_a_server_holds_its_own_database_and_schema_only(url: str) -> None:
    server = open_server(url)
    assert isinstance(server, PostgresServer) and server.acks_carry_results
    same = url.replace("postgresql://", "postgres://") + "&sslmode=disable"
    assert server.holds(same)
    assert not server.holds(url.replace(f"schema={schema_of(url)}", "schema=someone_else"))
    assert not server.holds(url.replace("/test?", "/other?"))
    assert not server.holds("redis://127.0.0.1:6379/0")
    assert parse_url("postgresql://127.0.0.1/test").schema == "celeriac"


async def test_a_publish_sent_again_after_a_lost_reply_finds_its_own_messages(broker: PostgresBroker) -> None:
    batch = [OutgoingMessage("m1", "q", b"one"), OutgoingMessage("m2", "q", b"two")]
    values = publish_params(batch, refuse=True)
    await broker.connection.fetch("publish", {**values, "resent": False})
    await broker.connection.fetch("publish", {**values, "resent": True})  # its own: no error
    with pytest.raises(DuplicateTaskError, match="m1"):
        await broker.publish([OutgoingMessage("m1", "q", b"someone else's")])
    assert await broker.queue_depths() == {"q": 2}


def generic_plan(schema: str, name: str, values: dict[str, Any]) -> str:
    """The plan a worker's connection runs ``name`` with (plan_cache_mode=force_generic_plan:
    one plan for every parameter value), as EXPLAIN shows it."""
    statement = load_statements(schema)[name]
    names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", statement)))
    numbered = re.sub(r"%\((\w+)\)s", lambda m: f"${names.index(m[1]) + 1}", statement)
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute("SET plan_cache_mode = force_generic_plan")
        conn.execute(f"PREPARE probe AS {numbered}")
        args = ", ".join(pgsql.Literal({"skew_ms": 0, **values}[n]).as_string(conn) for n in names)
        return "\n".join(row[0] for row in conn.execute(f"EXPLAIN EXECUTE probe({args})"))


async def test_statements_on_leased_messages_go_through_the_primary_key(broker: PostgresBroker) -> None:
    # Statistics taken while nothing is leased (as after a burst of publishes) once made
    # an ack of a batch read every lease and match each against the batch, and the reserve
    # hash the whole table: each is one probe of the primary key per message, whatever the
    # statistics say.
    schema = schema_of(broker.url)
    await broker.publish([OutgoingMessage(f"m{i}", "q", b"{}") for i in range(20_000)])
    sql(f"ANALYZE {schema}.messages")
    leased = await broker.reserve(["q"], 500, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    reserve = generic_plan(schema, "reserve", {"queues": ["q"], "max_count": 100, "lease_ms": LEASE_MS,
                                               "worker_id": "w"})
    fenced = {"task_ids": [d.task_id for d in leased], "tokens": [d.fencing_token for d in leased]}
    one = {"task_id": leased[0].task_id, "token": leased[0].fencing_token}
    by_id = [generic_plan(schema, name, values) for name, values in (
        ("ack", {**fenced, "result_ids": [], "result_ready": [], "result_tokens": [], "records": [],
                 "expires_ms": 1000}),
        ("renew", {**fenced, "lease_ms": LEASE_MS}), ("release", fenced),
        ("retry", {**one, "body": b"{}", "eta": None}), ("dead_letter", {**one, "reason": "r"}),
    )]
    for plan in (reserve, *by_id):
        assert "Seq Scan on messages" not in plan, plan
        assert "messages_pkey" in plan, plan
    for plan in by_id:
        assert "messages_leases" not in plan, plan
    assert await broker.ack(leased) == []


async def test_housekeeping_deletes_expired_rows_in_batches(broker: PostgresBroker) -> None:
    store = PostgresResultStore(broker.url, 60, broker.connection)
    await store.connect()
    try:
        for g in range(3):
            for m in range(4):
                record = ResultRecord(task_id=f"g{g}-m{m}", state=SUCCESS, fencing_token=1, date_done_ms=now_ms())
                await store.record_group_member(f"g{g}", f"g{g}-m{m}", 4, record)
            await store.save_group(f"g{g}", [f"g{g}-m{m}" for m in range(4)])
        unique = OutgoingMessage("follow-up", "q", b"{}", unique_for_s=60)
        await broker.publish([unique])
        [d] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
        assert await broker.ack([d], [ResultRecord(task_id="follow-up", state=SUCCESS, fencing_token=1)]) == []
        await broker.revoke(["revoked"])
        assert await broker.take_rate_token("task:t", 1 / 30, 5.0) == 0.0  # full again in 30 s
        schema = schema_of(broker.url)
        tables = ("results", "group_members", "group_counts", "groups", "unique_ids", "revoked", "rate_buckets")

        def counts() -> dict[str, int]:
            return {t: sql(f"SELECT count(*) FROM {schema}.{t}")[0][0] for t in tables}

        assert counts() == {"results": 13, "group_members": 12, "group_counts": 3, "groups": 3, "unique_ids": 1,
                            "revoked": 1, "rate_buckets": 1}
        assert await broker.connection.housekeeping.run() == 0  # nothing has expired yet
        await broker.skew_clock(61_000)
        assert await store.fetch("g0-m0") is None  # expired rows are hidden before they go
        assert await store.restore_group("g0") is None
        assert await broker.connection.housekeeping.run() == 34
        assert counts() == dict.fromkeys(tables, 0)
    finally:
        await store.close()
