"""PostgreSQL hand-off: a new message given to a waiting worker by the publish itself (handoff.py).

Each test gets a schema of its own. "Another process" is a second client whose wake-ups
reach this one only through the database's notifications (``apart``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from celeriac.servers import BrokerOptions, OutgoingMessage

from ..conftest import postgres_test_url
from .test_postgres import LEASE_MS, WOKEN_WITHIN_S, apart, first_look_done, schema_of, sql

psycopg = pytest.importorskip("psycopg")

from celeriac.servers.postgres import handoff  # noqa: E402
from celeriac.servers.postgres import transport as pg_transport  # noqa: E402
from celeriac.servers.postgres.transport import PostgresBroker  # noqa: E402


@pytest.fixture
def url() -> Iterator[str]:
    with postgres_test_url("pgh") as found:
        yield found


@pytest.fixture
async def broker(url: str) -> AsyncIterator[PostgresBroker]:
    b = PostgresBroker(url, BrokerOptions(result_expires_s=60, revoked_ttl_s=60))
    await b.connect()
    yield b
    await b.close()


@pytest.fixture
async def publisher(broker: PostgresBroker) -> AsyncIterator[PostgresBroker]:
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


async def waiting_reserve(broker: PostgresBroker, max_count: int = 5) -> asyncio.Task[Any]:
    """A reserve of worker ``w`` that has offered its slots and waits (only a notice ends it)."""
    offered = await first_look_done(broker.connection, "reserve_status")
    task = asyncio.create_task(broker.reserve(["q"], max_count, lease_ms=LEASE_MS, worker_id="w", timeout_s=3600))
    await offered.wait()
    return task


@pytest.fixture(autouse=True)
def only_notices_wake(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pg_transport, "SAFETY_POLL_S", 3600.0)


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
    assert rows(broker)["t1"][3] > handoff.HANDOFF_LEASE_MS
    assert await broker.ack([got]) == []
    assert rows(broker) == {}


async def test_a_revoked_id_is_handed_with_its_revocation(broker: PostgresBroker, publisher: PostgresBroker) -> None:
    await broker.revoke(["doomed"])
    waiting = await waiting_reserve(broker)
    await publisher.publish([OutgoingMessage("doomed", "q", b"{}")])
    [got] = await asyncio.wait_for(waiting, WOKEN_WITHIN_S)
    assert got.is_revoked is True


@pytest.mark.parametrize("message", [
    OutgoingMessage("later", "q", b"{}", eta_ms=2**41),
    OutgoingMessage("large", "q", b"x" * (handoff.BODY_MAX + 1)),
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
