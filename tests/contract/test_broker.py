"""The broker contract: every implementation, the same rules, against the real server."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from celeriac.exceptions import DuplicateTaskError
from celeriac.message import DeadLetter
from celeriac.servers import Broker, BrokerOptions, OutgoingMessage, create_broker
from celeriac.servers.contracts import SKIPPED_NOT_FOUND, SKIPPED_PENDING, RequeueOutcome

LEASE_MS = 60_000


@pytest.fixture
async def broker(backend_url: str) -> AsyncIterator[Broker]:
    b = create_broker(backend_url, BrokerOptions(max_deliveries=3))
    await b.connect()
    yield b
    await b.close()


def msg(task_id: str | None = None, queue: str = "q", priority: int = 0, eta_ms: int | None = None,
        body: bytes | None = None) -> OutgoingMessage:
    task_id = task_id or uuid.uuid4().hex
    return OutgoingMessage(task_id, queue, body or f'{{"id":"{task_id}"}}'.encode(), priority, eta_ms)


async def reserve(broker: Broker, n: int = 10, queues: tuple[str, ...] = ("q",), lease_ms: int = LEASE_MS,
                  timeout_s: float = 0.0) -> list[str]:
    got = await broker.reserve(list(queues), n, lease_ms=lease_ms, worker_id="w1", timeout_s=timeout_s)
    return [d.task_id for d in got]


async def test_publish_then_reserve_returns_body_and_token(broker: Broker) -> None:
    m = msg()
    await broker.publish([m])
    [d] = await broker.reserve(["q"], 5, lease_ms=LEASE_MS, worker_id="w1", timeout_s=0)
    assert d.task_id == m.task_id and d.body == m.body and d.queue == "q"
    assert d.fencing_token == 1
    assert await broker.reserve(["q"], 5, lease_ms=LEASE_MS, worker_id="w1", timeout_s=0) == []


async def test_reserve_takes_at_most_max_count(broker: Broker) -> None:
    await broker.publish([msg() for _ in range(7)])
    assert len(await reserve(broker, 3)) == 3
    assert len(await reserve(broker, 10)) == 4


async def test_priority_9_first_then_oldest(broker: Broker) -> None:
    low, high, mid = msg("low", priority=0), msg("high", priority=9), msg("mid", priority=5)
    await broker.publish([low])
    await broker.publish([high])
    await broker.publish([mid])
    await broker.publish([msg("low2", priority=0)])
    order = []
    for _ in range(4):
        order += await reserve(broker, 1)
    assert order == ["high", "mid", "low", "low2"]


async def test_only_named_queues(broker: Broker) -> None:
    await broker.publish([msg("a", queue="a"), msg("b", queue="b")])
    assert await reserve(broker, 10, queues=("b",)) == ["b"]
    assert await reserve(broker, 10, queues=("a", "b")) == ["a"]


async def test_duplicate_id_refused_while_pending_or_running(broker: Broker) -> None:
    await broker.publish([msg("dup")])
    with pytest.raises(DuplicateTaskError, match="dup"):
        await broker.publish([msg("dup")])
    await broker.publish([msg("dup")], on_duplicate="ignore")
    [d] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w1", timeout_s=0)
    with pytest.raises(DuplicateTaskError):
        await broker.publish([msg("dup")])
    assert await broker.ack([d]) == []
    await broker.publish([msg("dup")])  # done: the id may be used again
    assert await reserve(broker) == ["dup"]


async def test_duplicate_batch_writes_nothing(broker: Broker) -> None:
    await broker.publish([msg("taken")])
    with pytest.raises(DuplicateTaskError):
        await broker.publish([msg("fresh"), msg("taken")])
    assert sorted(await reserve(broker)) == ["taken"]


async def test_unique_id_is_refused_even_after_it_is_done(broker: Broker) -> None:
    body = msg("body-1")
    body.unique_for_s = 60
    await broker.publish([body])
    [d] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    assert await broker.ack([d]) == []
    with pytest.raises(DuplicateTaskError, match="body-1"):
        await broker.publish([msg("body-1")])
    again = msg("body-1")
    again.unique_for_s = 60
    await broker.publish([again, msg("other")], on_duplicate="ignore")
    assert await reserve(broker) == ["other"]


async def test_scheduled_message_has_no_lease_until_due(broker: Broker) -> None:
    now = int(time.time() * 1000)
    await broker.publish([msg("later", eta_ms=now + 400), msg("now")])
    assert await reserve(broker) == ["now"]
    assert await broker.queue_depths() == {"q": 1}
    assert await reserve(broker, timeout_s=2.0) == ["later"]


async def test_reserve_waits_for_a_publish(broker: Broker) -> None:
    waiting = asyncio.create_task(reserve(broker, timeout_s=5.0))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await broker.publish([msg("wake")])
    assert await waiting == ["wake"]
    assert time.monotonic() - started < 4.0


async def test_reserve_times_out_empty(broker: Broker) -> None:
    started = time.monotonic()
    assert await reserve(broker, timeout_s=0.2) == []
    assert time.monotonic() - started >= 0.15


async def test_expired_lease_is_reclaimed_with_a_higher_token(broker: Broker) -> None:
    await broker.publish([msg("x")])
    [first] = await broker.reserve(["q"], 1, lease_ms=100, worker_id="w1", timeout_s=0)
    await asyncio.sleep(0.25)
    [second] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w2", timeout_s=1.0)
    assert second.task_id == "x" and second.fencing_token == first.fencing_token + 1
    assert await broker.ack([first]) == ["x"]  # the old holder is fenced off
    assert await broker.renew([first], LEASE_MS) == ["x"]
    assert await broker.ack([second]) == []


async def test_renewed_lease_is_not_reclaimed(broker: Broker) -> None:
    await broker.publish([msg("x")])
    [d] = await broker.reserve(["q"], 1, lease_ms=300, worker_id="w1", timeout_s=0)
    for _ in range(4):
        await asyncio.sleep(0.1)
        assert await broker.renew([d], 300) == []
    assert await reserve(broker, timeout_s=0) == []
    assert await broker.ack([d]) == []


async def test_max_deliveries_dead_letters_with_reason(broker: Broker) -> None:
    await broker.publish([msg("crasher")])
    for _ in range(3):
        got = await broker.reserve(["q"], 1, lease_ms=50, worker_id="w", timeout_s=1.0)
        assert [d.task_id for d in got] == ["crasher"]
        await asyncio.sleep(0.1)
    assert await reserve(broker, timeout_s=0.1) == []
    [dead] = await broker.dead_letters()
    assert dead.task_id == "crasher" and "3 times" in dead.reason
    assert await broker.requeue_dead_letters(["crasher"]) == RequeueOutcome(["crasher"], {})
    [again] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    assert again.task_id == "crasher" and again.fencing_token == 4  # tokens keep rising


async def test_retries_and_releases_do_not_count_toward_max_deliveries(broker: Broker) -> None:
    await broker.publish([msg("steady", priority=7)])
    for _ in range(4):  # more than max_deliveries=3, each ending in a retry or a release
        [d] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=1.0)
        if d.fencing_token % 2:
            assert await broker.retry(d, d.body, None)
        else:
            assert await broker.release([d]) == []
    [d] = await broker.reserve(["q"], 1, lease_ms=50, worker_id="w", timeout_s=1.0)
    await asyncio.sleep(0.1)
    [d] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=1.0)
    assert d.task_id == "steady" and await broker.dead_letters() == []


async def test_dead_letter_keeps_priority_for_requeue(broker: Broker) -> None:
    await broker.publish([msg("low"), msg("urgent", priority=9)])
    [d] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    assert d.task_id == "urgent"
    assert await broker.dead_letter(d, "rejected")
    assert await broker.requeue_dead_letters(None) == RequeueOutcome(["urgent"], {})
    assert await reserve(broker, 1) == ["urgent"]


async def test_release_puts_back_at_the_head(broker: Broker) -> None:
    await broker.publish([msg("a"), msg("b")])
    [a] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    assert a.task_id == "a"
    assert await broker.release([a]) == []
    assert await reserve(broker, 1) == ["a"]


async def test_retry_keeps_id_replaces_body_and_schedules(broker: Broker) -> None:
    await broker.publish([msg("r")])
    [d] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    assert await broker.retry(d, b'{"attempt":2}', int(time.time() * 1000) + 200)
    assert await reserve(broker, timeout_s=0) == []
    [again] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=2.0)
    assert again.task_id == "r" and again.body == b'{"attempt":2}'
    assert not await broker.retry(d, b"stale", None)  # fenced: old token


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
        assert await reserve(broker, 1, lease_ms=50, timeout_s=1.0) == ["crasher"]
        await asyncio.sleep(0.1)
    assert await reserve(broker, timeout_s=0.1) == []
    letters = await broker.dead_letters()
    assert [(d.task_id, d.body) for d in letters] == [("crasher", b"rejected body"), ("crasher", b"crashing body")]
    assert letters[0].reason == "rejected" and "3 times" in letters[1].reason
    assert await broker.requeue_dead_letters(["crasher"]) == RequeueOutcome(["crasher"], {})
    [again] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    assert again.body == b"crashing body" and again.fencing_token == 4


async def test_revoked_ids(broker: Broker) -> None:
    await broker.revoke(["a", "b"])
    await broker.revoke(["c"], terminate=True)
    assert await broker.revoked_among(["a", "c", "z"]) == {"a": False, "c": True}
    assert await broker.revoked_among([]) == {}


async def test_purge_and_depths(broker: Broker) -> None:
    now = int(time.time() * 1000)
    await broker.publish([msg(queue="a"), msg(queue="a"), msg(queue="b", eta_ms=now + 60_000)])
    assert await broker.queue_depths() == {"a": 2, "b": 1}
    assert await broker.purge("a") == 2
    assert await broker.queue_depths() == {"b": 1}


async def test_ack_many_at_once(broker: Broker) -> None:
    await broker.publish([msg() for _ in range(50)])
    got = await broker.reserve(["q"], 50, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    assert len(got) == 50
    assert await broker.ack(got) == []
    assert await broker.queue_depths() == {}


async def test_event_log_is_capped_and_read_in_order(backend_url: str) -> None:
    b = create_broker(backend_url, BrokerOptions(events_max=5))
    await b.connect()
    try:
        await b.emit_events([f"e{i}".encode() for i in range(8)])
        newest = await b.read_events(None, 100)
        assert [raw for _, raw in newest][-5:] == [f"e{i}".encode() for i in range(3, 8)]
        assert len(newest) <= 6  # capping may be approximate, never unbounded
        first_id = newest[-3][0]
        assert [raw for _, raw in await b.read_events(first_id, 100)] == [b"e6", b"e7"]
        await b.emit_events([b"e8"])
        assert [raw for _, raw in await b.read_events(newest[-1][0], 100)] == [b"e8"]
    finally:
        await b.close()


async def test_reserve_may_answer_the_revoked_check(broker: Broker) -> None:
    await broker.publish([msg("keep"), msg("drop")])
    await broker.revoke(["drop"])
    got = {d.task_id: d.is_revoked for d in await broker.reserve(["q"], 5, lease_ms=LEASE_MS, worker_id="w",
                                                                   timeout_s=0)}
    assert set(got) == {"keep", "drop"}
    # A broker that checks while reserving must be right; one that does not says None.
    assert got["keep"] in (None, False) and got["drop"] in (None, True)
