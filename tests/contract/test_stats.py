"""The dashboard's contract: per-minute aggregates and the control log (ControlStore), and
queue statistics with lease counters (QueueAdmin), on every server."""

from __future__ import annotations

import time

from celeriac.servers import Broker, BrokerOptions, create_broker
from celeriac.servers.contracts import QueueStats
from celeriac.stats import KEEP_MINUTES, SLOTS, StatsRow, bucket_of

from .helpers import LEASE_MS, msg, reserve


def row(minute: int, name: str = "t", queue: str = "q", **counts: int) -> StatsRow:
    r = StatsRow(minute, name, queue, **counts)
    return r


def now_minute() -> int:
    return int(time.time() // 60)


# --- aggregates ---------------------------------------------------------------------


async def test_stats_rows_add_up_per_minute_name_and_queue(broker: Broker) -> None:
    m = now_minute()
    first = row(m, succeeded=2, started=2)
    first.observe_runtime(0.003)
    first.observe_runtime(0.2)
    first.observe_wait(1.5)
    second = row(m, failed=1, started=1)
    second.observe_runtime(0.2)
    other_queue = row(m, queue="other", retried=1)
    earlier = row(m - 1, revoked=3)
    await broker.record_stats([first, other_queue])
    await broker.record_stats([second, earlier])

    rows = await broker.read_stats(m - 1, m)
    assert [r.key for r in rows] == [(m - 1, "t", "q"), (m, "t", "other"), (m, "t", "q")]
    old, other, mine = rows
    assert old.revoked == 3 and old.runtime_count == 0
    assert other.retried == 1
    assert (mine.started, mine.succeeded, mine.failed, mine.retried, mine.revoked) == (3, 2, 1, 0, 0)
    assert mine.runtime_count == 3 and abs(mine.runtime_sum_s - 0.403) < 1e-9
    assert mine.runtime_buckets[bucket_of(0.2)] == 2 and mine.runtime_buckets[bucket_of(0.003)] == 1
    assert mine.wait_count == 1 and abs(mine.wait_sum_s - 1.5) < 1e-9
    assert len(mine.wait_buckets) == SLOTS and mine.wait_buckets[bucket_of(1.5)] == 1

    assert [r.key for r in await broker.read_stats(m, m)] == [(m, "t", "other"), (m, "t", "q")]
    assert await broker.read_stats(m + 1, m + 5) == []


async def test_stats_of_several_writers_are_summed(backend_url: str) -> None:
    first, second = create_broker(backend_url, BrokerOptions()), create_broker(backend_url, BrokerOptions())
    await first.connect()
    await second.connect()
    try:
        m = now_minute()
        await first.record_stats([row(m, succeeded=1)])
        await second.record_stats([row(m, succeeded=2)])
        await first.record_stats([row(m, succeeded=4)])
        [total] = await second.read_stats(m, m)
        assert total.succeeded == 7
    finally:
        await first.close()
        await second.close()


async def test_events_and_stats_are_written_in_one_call(broker: Broker) -> None:
    m = now_minute()
    await broker.emit_events([b"e1", b"e2"], stats=[row(m, succeeded=1)])
    await broker.emit_events([], stats=[row(m, succeeded=1)])
    await broker.emit_events([b"e3"])
    assert [raw for _, raw in await broker.read_events(None, 10)] == [b"e1", b"e2", b"e3"]
    [r] = await broker.read_stats(m, m)
    assert r.succeeded == 2


async def test_stats_are_kept_for_a_day(broker: Broker) -> None:
    day_ago = now_minute() - 24 * 60
    await broker.record_stats([row(day_ago, succeeded=1)])
    await broker.record_stats([row(now_minute(), succeeded=1)])  # a later write prunes only older minutes
    assert [r.succeeded for r in await broker.read_stats(day_ago, day_ago)] == [1]


async def test_stats_older_than_the_window_are_pruned(broker: Broker) -> None:
    too_old = now_minute() - KEEP_MINUTES - 30
    await broker.record_stats([row(too_old, succeeded=1)])
    await broker.record_stats([row(now_minute(), succeeded=1)])
    await prune(broker)
    assert await broker.read_stats(too_old, too_old) == [] or await expires_in_time(broker, too_old)


async def prune(broker: Broker) -> None:
    """What each server does on its own, now: housekeeping on SQL; Redis keys expire by themselves."""
    db = getattr(broker, "db", None)
    if db is not None:
        await db.housekeep()
    connection = getattr(broker, "connection", None)
    housekeeping = getattr(connection, "housekeeping", None)
    if housekeeping is not None:
        await housekeeping.run()


async def expires_in_time(broker: Broker, minute: int) -> bool:
    """Redis: a minute's hash expires KEEP_MINUTES (plus one) after its last write, never sooner."""
    keys = getattr(broker, "keys", None)
    if keys is None:
        return False
    ttl_ms = await broker.connection.client.pttl(keys.stats(minute))  # type: ignore[attr-defined]
    return bool(0 < ttl_ms <= (KEEP_MINUTES + 1) * 60_000)


# --- the control log ----------------------------------------------------------------


async def test_control_log_is_capped_read_in_order_and_apart_from_events(backend_url: str) -> None:
    b = create_broker(backend_url, BrokerOptions(control_max=5))
    await b.connect()
    try:
        await b.emit_events([b"event"])
        await b.emit_control([f"c{i}".encode() for i in range(8)])
        newest = await b.read_control(None, 100)
        assert [raw for _, raw in newest][-5:] == [f"c{i}".encode() for i in range(3, 8)]
        assert len(newest) <= 6
        assert [raw for _, raw in await b.read_events(None, 100)] == [b"event"]
        first_id = newest[-3][0]
        assert [raw for _, raw in await b.read_control(first_id, 100)] == [b"c6", b"c7"]
        await b.emit_control([b"c8"])
        assert [raw for _, raw in await b.read_control(newest[-1][0], 100)] == [b"c8"]
        assert [raw for _, raw in await b.read_control(None, 1)] == [b"c8"]
    finally:
        await b.close()


async def test_an_empty_control_log_reads_empty(broker: Broker) -> None:
    assert await broker.read_control(None, 10) == []
    await broker.emit_control([])
    assert await broker.read_control(None, 10) == []


# --- queue statistics ---------------------------------------------------------------


async def test_queue_stats_count_queued_scheduled_and_leased(broker: Broker) -> None:
    assert await broker.queue_stats() == {}
    before_ms = int(time.time() * 1000)
    await broker.publish([msg("a"), msg("b", priority=9), msg("c"), msg("later", eta_ms=before_ms + 60_000),
                          msg("x", queue="other")])
    [d] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    assert d.task_id == "b"
    stats = await broker.queue_stats()
    q = stats["q"]
    assert (q.queued, q.scheduled, q.leased, q.dead_letters) == (2, 1, 1, 0)
    assert q.oldest_queued_ms is not None and abs(q.oldest_queued_ms - before_ms) < 5_000
    assert (stats["other"].queued, stats["other"].leased) == (1, 0)

    await broker.skew_clock(61_000)  # the eta passed: due, counted as queued before any reserve moves it
    q = (await broker.queue_stats())["q"]
    assert (q.queued, q.scheduled) == (3, 0)

    assert await broker.dead_letter(d, "rejected")
    q = (await broker.queue_stats())["q"]
    assert (q.leased, q.dead_letters) == (0, 1)
    assert await broker.dead_letter_count() == 1


async def test_queue_stats_leave_released_messages_out_of_the_oldest(broker: Broker) -> None:
    await broker.publish([msg("r")])
    [d] = await broker.reserve(["q"], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
    assert await broker.release([d]) == []
    q = (await broker.queue_stats())["q"]
    assert (q.queued, q.leased, q.oldest_queued_ms) == (1, 0, None)


async def test_reserve_counts_leases_that_ran_out(broker: Broker) -> None:
    # The fixture's max_deliveries is 3: two leases run out and the message is put back,
    # the third dead-letters it.
    await broker.publish([msg("stuck")])
    for _ in range(3):
        assert await reserve(broker, 1, lease_ms=1_000) == ["stuck"]
        await broker.skew_clock(2_000)
    assert await reserve(broker, 1) == []
    q = (await broker.queue_stats())["q"]
    assert (q.lease_expirations, q.lease_reclaims, q.dead_letters, q.queued, q.leased) == (3, 2, 1, 0, 0)
    assert await broker.dead_letter_count() == 1
    assert await broker.purge_dead_letters() == 1
    assert await broker.dead_letter_count() == 0
    # The counters stay once the queue is empty.
    assert (await broker.queue_stats())["q"] == QueueStats("q", lease_expirations=3, lease_reclaims=2)


async def test_dead_letter_count_counts_every_dead_letter(broker: Broker) -> None:
    assert await broker.dead_letter_count() == 0
    for queue in ("q", "q", "other"):
        await broker.publish([msg("same", queue=queue)])
        [d] = await broker.reserve([queue], 1, lease_ms=LEASE_MS, worker_id="w", timeout_s=0)
        assert await broker.dead_letter(d, "rejected")
    assert await broker.dead_letter_count() == 3
    stats = await broker.queue_stats()
    assert (stats["q"].dead_letters, stats["other"].dead_letters) == (2, 1)
