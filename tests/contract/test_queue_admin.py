"""The queue-admin contract behind ops.py: dead letters, requeue, purge and depths."""

from __future__ import annotations

import time

from celeriac.message import DeadLetter
from celeriac.servers import Broker
from celeriac.servers.contracts import SKIPPED_NOT_FOUND, SKIPPED_PENDING, RequeueOutcome

from .helpers import LEASE_MS, msg, reserve


async def test_dead_letter_keeps_priority_for_requeue(broker: Broker) -> None:
    await broker.publish([msg("low"), msg("urgent", priority=9)])
    [d] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    assert d.task_id == "urgent"
    assert await broker.dead_letter(d, "rejected")
    assert await broker.requeue_dead_letters(None) == RequeueOutcome(["urgent"], {})
    assert await reserve(broker, 1) == ["urgent"]


async def test_dead_letter_is_fenced_and_listed(broker: Broker) -> None:
    await broker.publish([msg("bad")])
    [d] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    assert await broker.dead_letter(d, "malformed message: boom")
    assert not await broker.dead_letter(d, "again")
    [dead] = await broker.dead_letters()
    assert dead.reason == "malformed message: boom" and dead.queue == "q"
    assert await broker.purge_dead_letters() == 1
    assert await broker.dead_letters() == []


async def dead_letter_one(broker: Broker, task_id: str, body: bytes, reason: str) -> None:
    """Publish ``task_id`` with ``body``, reserve it and dead-letter it."""
    await broker.publish([msg(task_id, body=body)])
    [d] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    assert d.task_id == task_id and await broker.dead_letter(d, reason)


def summary(letters: list[DeadLetter]) -> list[tuple[str, bytes, str]]:
    return [(d.task_id, d.body, d.reason) for d in letters]


async def test_requeue_skips_a_pending_id_and_keeps_its_dead_letter(broker: Broker) -> None:
    await dead_letter_one(broker, "p", b"first", "rejected")
    kept = [("p", b"first", "rejected")]
    skipped = RequeueOutcome([], {"p": SKIPPED_PENDING})

    await broker.publish([msg("p", eta_ms=int(time.time() * 1000) + 60_000, body=b"again")])  # scheduled
    assert await broker.requeue_dead_letters(["p"]) == skipped
    assert await broker.requeue_dead_letters(None) == skipped
    assert summary(await broker.dead_letters()) == kept

    assert await broker.purge("q") == 1
    await broker.publish([msg("p", body=b"again")])  # queued
    assert await broker.requeue_dead_letters(["p"]) == skipped
    assert summary(await broker.dead_letters()) == kept

    [d] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)  # reserved
    assert d.body == b"again"
    assert await broker.requeue_dead_letters(["p", "p"]) == skipped
    assert summary(await broker.dead_letters()) == kept

    assert await broker.ack([d]) == []  # done: now the dead letter may go back
    assert await broker.requeue_dead_letters(["p"]) == RequeueOutcome(["p"], {})
    [again] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    assert again.task_id == "p" and again.body == b"first"
    assert await broker.dead_letters() == []


async def test_requeue_names_ids_without_a_dead_letter(broker: Broker) -> None:
    await dead_letter_one(broker, "dead", b"x", "rejected")
    outcome = await broker.requeue_dead_letters(["nobody", "dead"])
    assert outcome == RequeueOutcome(["dead"], {"nobody": SKIPPED_NOT_FOUND})
    assert await broker.requeue_dead_letters([]) == RequeueOutcome()
    assert await reserve(broker) == ["dead"]


async def test_a_second_dead_letter_of_an_id_does_not_replace_the_first(broker: Broker) -> None:
    await dead_letter_one(broker, "twice", b"one", "first failure")
    await dead_letter_one(broker, "twice", b"two", "second failure")
    await dead_letter_one(broker, "other", b"o", "other failure")
    assert summary(await broker.dead_letters()) == [
        ("twice", b"one", "first failure"), ("twice", b"two", "second failure"), ("other", b"o", "other failure"),
    ]
    # A requeue takes the newest dead letter of the id and leaves the older one listed.
    assert await broker.requeue_dead_letters(["twice"]) == RequeueOutcome(["twice"], {})
    [d] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    assert d.task_id == "twice" and d.body == b"two"
    assert summary(await broker.dead_letters()) == [
        ("twice", b"one", "first failure"), ("other", b"o", "other failure"),
    ]
    # While it is reserved, the older dead letter of the id cannot go back; the others can.
    assert await broker.requeue_dead_letters(None) == RequeueOutcome(["other"], {"twice": SKIPPED_PENDING})
    assert await reserve(broker) == ["other"]
    assert await broker.ack([d]) == []
    # Every dead letter counts and goes with a purge, however many an id has.
    await dead_letter_one(broker, "twice", b"three", "third failure")
    assert len(await broker.dead_letters()) == 2
    assert await broker.purge_dead_letters() == 2
    assert await broker.dead_letters() == []
    assert await broker.requeue_dead_letters(None) == RequeueOutcome()


async def test_dead_letters_are_listed_in_the_order_they_were_written(broker: Broker) -> None:
    names = [f"{chr(ord('z') - i)}-{i}" for i in range(12)]  # against the alphabet, mostly within one ms
    for name in names:
        await dead_letter_one(broker, name, b"{}", "rejected")
    await dead_letter_one(broker, names[0], b"again", "rejected again")
    assert [d.task_id for d in await broker.dead_letters()] == [*names, names[0]]
    assert [d.task_id for d in await broker.dead_letters(limit=3)] == names[:3]


async def test_requeue_all_takes_one_dead_letter_per_id(broker: Broker) -> None:
    for body in (b"a1", b"a2", b"a3"):
        await dead_letter_one(broker, "a", body, "failed")
    await dead_letter_one(broker, "b", b"b1", "failed")
    assert await broker.requeue_dead_letters(None) == RequeueOutcome(["a", "b"], {})
    got = await broker.reserve(["q"], 10, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    assert sorted((d.task_id, d.body) for d in got) == [("a", b"a3"), ("b", b"b1")]
    assert await broker.ack(got) == []
    assert summary(await broker.dead_letters()) == [("a", b"a1", "failed"), ("a", b"a2", "failed")]
    assert await broker.requeue_dead_letters(None) == RequeueOutcome(["a"], {})
    [d] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    assert d.body == b"a2"


async def test_a_lease_run_out_dead_letter_is_kept_beside_an_earlier_one(broker: Broker) -> None:
    await dead_letter_one(broker, "crasher", b"rejected body", "rejected")
    await broker.publish([msg("crasher", body=b"crashing body")])
    for _ in range(3):  # max_deliveries=3
        assert await reserve(broker, 1) == ["crasher"]
        await broker.skew_clock(LEASE_MS + 1_000)
    assert await reserve(broker) == []
    letters = await broker.dead_letters()
    assert [(d.task_id, d.body) for d in letters] == [("crasher", b"rejected body"), ("crasher", b"crashing body")]
    assert letters[0].reason == "rejected" and "3 times" in letters[1].reason
    assert await broker.requeue_dead_letters(["crasher"]) == RequeueOutcome(["crasher"], {})
    [again] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    assert again.body == b"crashing body" and again.fencing_token == 4


async def test_purge_and_depths(broker: Broker) -> None:
    now = int(time.time() * 1000)
    await broker.publish([msg(queue="a"), msg(queue="a"), msg(queue="b", eta_ms=now + 60_000)])
    assert await broker.queue_depths() == {"a": 2, "b": 1}
    assert await broker.purge("a") == 2
    assert await broker.queue_depths() == {"b": 1}
