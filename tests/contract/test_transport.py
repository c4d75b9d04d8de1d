"""The transport contract: publish, reserve, renew, ack, release, retry and dead-letter,
the same rules for every server, against the real server."""

from __future__ import annotations

import asyncio
import time

import pytest

from celeriac.exceptions import DuplicateTaskError
from celeriac.servers import Broker
from celeriac.servers.contracts import OutgoingMessage, RequeueOutcome

from .helpers import LEASE_MS, msg, reserve


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


# A large batch (a group of a few hundred): the PostgreSQL broker writes it by COPY, with
# the same rules as a small one.
LARGE = 300


def large(prefix: str) -> list[OutgoingMessage]:
    return [msg(f"{prefix}{i}") for i in range(LARGE)]


async def remember_done(broker: Broker, task_id: str) -> None:
    """Publish ``task_id`` with unique_for_s=60, then run it to done: its id stays remembered."""
    first = msg(task_id)
    first.unique_for_s = 60
    await broker.publish([first])
    [d] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    assert await broker.ack([d]) == []


async def test_a_large_batch_keeps_its_order_priorities_and_schedules(broker: Broker) -> None:
    now = int(time.time() * 1000)
    batch = [msg(f"m{i:03}", priority=9 if i % 100 == 7 else 0, eta_ms=now + 60_000 if i % 50 == 3 else None)
             for i in range(LARGE)]
    await broker.publish(batch)
    due = [m.task_id for m in batch if m.eta_ms is None]
    urgent = [t for t in due if t.endswith("07")]
    taken = await broker.reserve(["q"], LARGE, lease_ms=LEASE_MS, worker_id="w1", timeout_s=0)
    assert [d.task_id for d in taken] == urgent + [t for t in due if t not in urgent]
    assert await broker.ack(taken) == []
    await broker.skew_clock(61_000)
    assert await reserve(broker, LARGE) == [m.task_id for m in batch if m.eta_ms is not None]


async def test_a_large_batch_with_a_pending_or_repeated_id_writes_nothing(broker: Broker) -> None:
    await broker.publish([msg("taken")])
    with pytest.raises(DuplicateTaskError, match="taken"):
        await broker.publish([*large("a"), msg("taken")])
    with pytest.raises(DuplicateTaskError, match="twice"):
        await broker.publish([*large("b"), msg("twice"), msg("twice")])
    assert await reserve(broker, LARGE) == ["taken"]
    await broker.publish([*large("c"), msg("c0")], on_duplicate="ignore")
    assert await reserve(broker, 2 * LARGE) == [f"c{i}" for i in range(LARGE)]


async def test_a_large_batch_with_a_remembered_unique_id_is_refused_or_skips_it(broker: Broker) -> None:
    await remember_done(broker, "once")
    with pytest.raises(DuplicateTaskError, match="once"):
        await broker.publish([*large("a"), msg("once")])
    assert await reserve(broker, LARGE) == []
    await broker.publish([*large("b"), msg("once")], on_duplicate="ignore")
    assert await reserve(broker, 2 * LARGE) == [f"b{i}" for i in range(LARGE)]


async def test_unique_id_is_refused_even_after_it_is_done(broker: Broker) -> None:
    await remember_done(broker, "body-1")
    with pytest.raises(DuplicateTaskError, match="body-1"):
        await broker.publish([msg("body-1")])
    again = msg("body-1")
    again.unique_for_s = 60
    await broker.publish([again, msg("other")], on_duplicate="ignore")
    assert await reserve(broker) == ["other"]


async def test_unique_id_is_accepted_again_once_its_time_is_up(broker: Broker) -> None:
    await remember_done(broker, "once")
    await broker.skew_clock(59_000)
    with pytest.raises(DuplicateTaskError, match="once"):
        await broker.publish([msg("once")])
    await broker.skew_clock(2_000)
    await broker.publish([msg("once")])
    assert await reserve(broker) == ["once"]


async def test_scheduled_message_has_no_lease_until_due(broker: Broker) -> None:
    now = int(time.time() * 1000)
    await broker.publish([msg("later", eta_ms=now + 10_000), msg("now")])
    assert await reserve(broker) == ["now"]
    assert await broker.queue_depths() == {"q": 1}
    await broker.skew_clock(5_000)
    assert await reserve(broker) == []
    await broker.skew_clock(6_000)  # due now, while the lease of "now" still runs
    assert await reserve(broker) == ["later"]


async def test_a_waiting_reserve_wakes_when_a_scheduled_message_falls_due(broker: Broker) -> None:
    await broker.publish([msg("soon", eta_ms=int(time.time() * 1000) + 100)])
    assert await reserve(broker, timeout_s=5.0) == ["soon"]


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
    [first] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w1", timeout_s=0)
    await broker.skew_clock(LEASE_MS - 1_000)
    assert await reserve(broker) == []  # still held
    await broker.skew_clock(2_000)
    [second] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w2", timeout_s=0)
    assert second.task_id == "x" and second.fencing_token == first.fencing_token + 1
    assert await broker.ack([first]) == ["x"]  # the old holder is fenced off
    assert await broker.renew([first], LEASE_MS) == ["x"]
    assert await broker.ack([second]) == []


async def test_renewed_lease_is_not_reclaimed(broker: Broker) -> None:
    await broker.publish([msg("x")])
    [d] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w1", timeout_s=0)
    for _ in range(4):  # well past the first lease, renewed at two thirds of each
        await broker.skew_clock(LEASE_MS * 2 // 3)
        assert await broker.renew([d], LEASE_MS) == []
    assert await reserve(broker, timeout_s=0) == []
    assert await broker.ack([d]) == []


async def test_max_deliveries_dead_letters_with_reason(broker: Broker) -> None:
    await broker.publish([msg("crasher")])
    for _ in range(3):
        got = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
        assert [d.task_id for d in got] == ["crasher"]
        await broker.skew_clock(LEASE_MS + 1_000)
    assert await reserve(broker) == []
    [dead] = await broker.dead_letters()
    assert dead.task_id == "crasher" and "3 times" in dead.reason
    assert await broker.requeue_dead_letters(["crasher"]) == RequeueOutcome(["crasher"], {})
    [again] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    assert again.task_id == "crasher" and again.fencing_token == 4  # tokens keep rising


async def test_retries_and_releases_do_not_count_toward_max_deliveries(broker: Broker) -> None:
    await broker.publish([msg("steady", priority=7)])
    for _ in range(4):  # more than max_deliveries=3, each ending in a retry or a release
        [d] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
        if d.fencing_token % 2:
            assert await broker.retry(d, d.body, None)
        else:
            assert await broker.release([d]) == []
    [d] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    await broker.skew_clock(LEASE_MS + 1_000)
    [d] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    assert d.task_id == "steady" and await broker.dead_letters() == []


async def test_release_puts_back_at_the_head(broker: Broker) -> None:
    await broker.publish([msg("a"), msg("b")])
    [a] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    assert a.task_id == "a"
    assert await broker.release([a]) == []
    assert await reserve(broker, 1) == ["a"]


async def test_retry_keeps_id_replaces_body_and_schedules(broker: Broker) -> None:
    await broker.publish([msg("r")])
    [d] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    assert await broker.retry(d, b'{"attempt":2}', int(time.time() * 1000) + 60_000)
    assert await reserve(broker, timeout_s=0) == []
    await broker.skew_clock(61_000)
    [again] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    assert again.task_id == "r" and again.body == b'{"attempt":2}'
    assert not await broker.retry(d, b"stale", None)  # fenced: old token


async def test_ack_many_at_once(broker: Broker) -> None:
    await broker.publish([msg() for _ in range(50)])
    got = await broker.reserve(["q"], 50, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    assert len(got) == 50
    assert await broker.ack(got) == []
    assert await broker.queue_depths() == {}


async def test_reserve_may_answer_the_revoked_check(broker: Broker) -> None:
    await broker.publish([msg("keep"), msg("drop")])
    await broker.revoke(["drop"])
    got = {d.task_id: d.is_revoked for d in await broker.reserve(["q"], 5, lease_ms=LEASE_MS, worker_id="w",
                                                                   timeout_s=0)}
    assert set(got) == {"keep", "drop"}
    # A broker that checks while reserving must be right; one that does not says None.
    assert got["keep"] in (None, False) and got["drop"] in (None, True)
