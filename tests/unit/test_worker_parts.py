"""The worker's parts tested directly: the lease keeper, the completion buffer, follow-ups.

Each runs against the memory server with one role swapped for a stand-in where the test
needs a failure the server would not produce on its own.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Sequence
from typing import Any

import pytest

from celeriac import Celery
from celeriac.message import FAILURE, SUCCESS, Delivery, Envelope, ResultRecord
from celeriac.servers import BrokerOptions, Clients, OutgoingMessage, open_clients
from celeriac.worker.completion import CompletionBuffer
from celeriac.worker.followups import FollowUps, derived_id
from celeriac.worker.lease import LeaseKeeper

LEASE_MS = 60_000


def memory_clients() -> Clients:
    url = f"memory://{uuid.uuid4().hex}"
    return open_clients(url, url, BrokerOptions(), 60)


async def reserved(clients: Clients, *task_ids: str) -> list[Delivery]:
    await clients.broker.publish([OutgoingMessage(t, "q", b"{}") for t in task_ids])
    return await clients.broker.reserve(["q"], len(task_ids), lease_ms=LEASE_MS, worker_id="w", timeout_s=0)


# --- the lease keeper ---------------------------------------------------------------


class Lost:
    """Collects what the keeper reports from its thread."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], str]] = []
        self.seen = threading.Event()

    def __call__(self, ids: list[str], why: str) -> None:
        self.calls.append((ids, why))
        self.seen.set()


async def test_keeper_cancels_what_it_cannot_renew_for_a_whole_lease() -> None:
    clients = memory_clients()
    [delivery] = await reserved(clients, "held")

    async def renew_fails(deliveries: Sequence[Delivery], lease_ms: int) -> list[str]:
        raise ConnectionError("broker unreachable")

    keeper_clients = memory_clients()
    keeper_clients.broker.renew = renew_fails  # type: ignore[method-assign]
    lost = Lost()
    keeper = LeaseKeeper(lambda: keeper_clients, 0.3, on_lost=lost)  # renews every 0.1 s
    keeper.hold(delivery)
    keeper.start()
    try:
        assert await asyncio.to_thread(lost.seen.wait, 30)
    finally:
        keeper.stop()
    assert lost.calls[0] == (["held"], "lease renewals kept failing")


async def test_keeper_reports_leases_taken_over_and_revoked_ids() -> None:
    url = f"memory://{uuid.uuid4().hex}"
    clients = open_clients(url, url, BrokerOptions(), 60)
    stale, kept = await reserved(clients, "stale", "kept")
    stale.fencing_token = 0  # as if another worker now holds a newer delivery
    await clients.control.revoke(["kept"], terminate=True)
    lost, revoked, revoked_seen = Lost(), [], threading.Event()

    def on_revoked(found: dict[str, bool]) -> None:
        revoked.append(found)
        revoked_seen.set()

    keeper = LeaseKeeper(lambda: open_clients(url, url, BrokerOptions(), 60), 0.3, on_lost=lost,
                         on_revoked=on_revoked)
    keeper.hold(stale)
    keeper.hold(kept)
    keeper.start()
    try:
        assert await asyncio.to_thread(lost.seen.wait, 30)
        assert await asyncio.to_thread(revoked_seen.wait, 30)
    finally:
        keeper.stop()
    assert lost.calls[0] == (["stale"], "lease taken over by another worker")
    assert revoked[0] == {"kept": True}


# --- the completion buffer ----------------------------------------------------------


def record(task_id: str, token: int, **fields: Any) -> ResultRecord:
    return ResultRecord(task_id=task_id, state=SUCCESS, fencing_token=token, **fields)


async def test_buffer_acks_with_results_and_drops_the_leases() -> None:
    clients = memory_clients()
    deliveries = await reserved(clients, "a", "b")
    keeper = LeaseKeeper(lambda: clients, 60, on_lost=Lost())
    for d in deliveries:
        keeper.hold(d)
    buffer = CompletionBuffer(clients.broker, clients.control, clients.store, keeper, clients.acks_carry_results)
    buffer.start()
    for d in deliveries:
        buffer.ack(d, record(d.task_id, d.fencing_token, result=d.task_id))
    await buffer.drain()
    await buffer.stop()
    assert keeper.held() == []
    assert clients.store is not None
    found = await clients.store.fetch_many(["a", "b"])
    assert {k: v.result for k, v in found.items()} == {"a": "a", "b": "b"}
    assert await clients.admin.queue_depths() == {}


async def test_buffer_keeps_items_while_writes_fail_then_writes_them() -> None:
    clients = memory_clients()
    [delivery] = await reserved(clients, "later")
    keeper = LeaseKeeper(lambda: clients, 60, on_lost=Lost())
    real_ack, attempts = clients.broker.ack, []

    async def flaky_ack(deliveries: Sequence[Delivery], results: Sequence[ResultRecord] = ()) -> list[str]:
        attempts.append(len(deliveries))
        if len(attempts) < 3:
            raise ConnectionError("not yet")
        return await real_ack(deliveries, results)

    clients.broker.ack = flaky_ack  # type: ignore[method-assign]
    buffer = CompletionBuffer(clients.broker, clients.control, clients.store, keeper, True)
    buffer.start()
    buffer.ack(delivery, record("later", delivery.fencing_token))
    await asyncio.wait_for(buffer.drain(), 30)
    await buffer.stop()
    assert attempts == [1, 1, 1]
    assert clients.store is not None and (await clients.store.fetch("later")) is not None


async def test_a_record_that_cannot_be_encoded_is_replaced_not_retried_forever() -> None:
    url = f"sqlite:///{uuid.uuid4().hex}.db"  # a store that encodes what it writes
    clients = open_clients(url, url, BrokerOptions(), 60)
    await clients.broker.connect()
    try:
        bad, good = await reserved(clients, "bad", "good")
        keeper = LeaseKeeper(lambda: clients, 60, on_lost=Lost())
        buffer = CompletionBuffer(clients.broker, clients.control, clients.store, keeper, True)
        buffer.start()
        buffer.ack(bad, record("bad", bad.fencing_token, result="name-\udcff"))
        buffer.ack(good, record("good", good.fencing_token, result="fine"))
        await asyncio.wait_for(buffer.drain(), 30)
        await buffer.stop()
        assert clients.store is not None
        found = await clients.store.fetch_many(["bad", "good"])
        assert found["good"].result == "fine"
        assert found["bad"].state == FAILURE and "could not be stored" in (found["bad"].exc_message or "")
    finally:
        await clients.broker.close()
        import os

        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(url[len("sqlite:///"):] + suffix):
                os.remove(url[len("sqlite:///"):] + suffix)


# --- follow-ups ---------------------------------------------------------------------


def test_derived_ids_are_stable_and_distinct() -> None:
    assert derived_id("p", "link", 0) == derived_id("p", "link", 0)
    assert len({derived_id("p", "link", 0), derived_id("p", "link", 1), derived_id("p", "chain", 0),
                derived_id("q", "link", 0)}) == 4


async def test_a_chain_step_is_sent_once_however_often_its_parent_finishes() -> None:
    app = Celery("proj", broker=f"memory://{uuid.uuid4().hex}")

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    clients = await app.clients()
    followups = FollowUps(app, clients.store)
    step = add.s(10)
    step.freeze()  # the canvas fixes every step's id when the chain is sent
    envelope = Envelope(id="parent", task=add.name, args=[1, 2], chain=[dict(step)])
    first = await followups.on_success(envelope, 3)
    again = await followups.on_success(envelope, 3)  # a redelivered parent finishing twice
    assert first == again and len(first) == 1
    assert await clients.admin.queue_depths() == {"celery": 1}


@pytest.mark.parametrize("member_results", [[SUCCESS, SUCCESS], [SUCCESS, FAILURE]])
async def test_a_chord_body_is_sent_once_when_members_finish_twice(member_results: list[str]) -> None:
    app = Celery("proj", broker=f"memory://{uuid.uuid4().hex}")

    @app.task
    def collect(values: list[int]) -> int:
        return sum(values)

    clients = await app.clients()
    assert clients.store is not None
    followups = FollowUps(app, clients.store)
    body = collect.s()
    body.freeze()  # the canvas fixes the body's id from the chord's and saves its members
    await clients.store.save_group("g", ["m0", "m1"])
    chord = {"group_id": "g", "total": 2, "body": dict(body)}
    for _ in range(2):  # every member finishing twice, as after a redelivery
        for index, state in enumerate(member_results):
            member = Envelope(id=f"m{index}", task="proj.member", group_id="g", group_index=index, chord=chord)
            done = ResultRecord(task_id=member.id, state=state, result=index, fencing_token=1,
                                exc_type="ValueError" if state == FAILURE else None)
            await followups.chord_member_done(member, done)
    depths = await clients.admin.queue_depths()
    assert depths == ({"celery": 1} if FAILURE not in member_results else {})


def test_a_huge_traceback_is_clipped_in_the_log_keeping_its_end() -> None:
    from celeriac.worker.loop import _clipped_traceback

    short = "Traceback (most recent call last):\n  ...\nValueError: boom"
    assert _clipped_traceback(short) == short
    huge = "Traceback (most recent call last):\n" + "x" * 10_000_000 + "\nValueError: the end"
    clipped = _clipped_traceback(huge, limit=1000)
    assert len(clipped) < 1100
    assert clipped.startswith("Traceback") and clipped.endswith("ValueError: the end")
    assert f"({len(huge) - 1000:,} characters cut)" in clipped
