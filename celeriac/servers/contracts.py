"""The contracts every server implements: the broker and the result store.

A message is in exactly one place at a time: scheduled (waiting for its eta, no lease),
queued, reserved (under a lease held by one worker, fenced by its delivery count), or
dead-lettered. Acknowledging removes it. The contract suite in ``tests/contract`` holds
every implementation to these rules.

Result writes carry the fencing token of the delivery that produced them: a store refuses
a write whose token is lower than the one it holds, so a worker whose lease was taken
over cannot overwrite the new holder's result. Recording a group member is one idempotent
step (a set of finished member ids), so chords count each member once however often it
runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ..message import DeadLetter, Delivery, GroupProgress, ResultRecord, now_ms
from ..stats import StatsRow


@dataclass(slots=True)
class OutgoingMessage:
    task_id: str
    queue: str
    body: bytes
    priority: int = 0  # 0-9, 9 first
    eta_ms: int | None = None  # None or past: queued now; future: scheduled
    # Remember the id this long after publishing and refuse it again even once it is done:
    # follow-up messages (a chain's next step, a chord body) use it so they are enqueued
    # exactly once, however often the task that sends them runs.
    unique_for_s: float | None = None


@dataclass(slots=True)
class BrokerOptions:
    max_deliveries: int = 5
    events_max: int = 10_000  # the event log keeps about this many of the newest events
    control_max: int = 1_000  # the control log (remote-control requests and replies) keeps this many
    revoked_ttl_s: float = 86400.0 * 7
    result_expires_s: float | None = 86400.0


# Why ``requeue_dead_letters`` left a task id alone (the values of ``RequeueOutcome.skipped``).
SKIPPED_PENDING = "pending"  # a message with that id is scheduled, queued or reserved: its dead letters stay
SKIPPED_NOT_FOUND = "not found"  # no dead letter has that id


@dataclass(slots=True)
class QueueStats:
    """One queue as ``QueueAdmin.queue_stats`` sees it.

    ``queued`` counts messages that can be handed out now (a scheduled message whose eta
    passed counts here, whether or not a reserve has moved it yet), ``scheduled`` those
    whose eta is ahead, ``leased`` those reserved under a lease. ``oldest_queued_ms`` is
    when the longest-waiting queued message became due (published, its eta passed, or its
    lease ran out and it was put back), in the server's clock; messages released at a
    worker's shutdown go back to the head of the queue and are left out of it. The two
    counters only grow: leases that ran out and were found by a reserve, and of those, the
    ones put back on the queue (the others were dead-lettered past ``max_deliveries``).
    """

    queue: str
    queued: int = 0
    scheduled: int = 0
    leased: int = 0
    oldest_queued_ms: int | None = None
    dead_letters: int = 0
    lease_expirations: int = 0
    lease_reclaims: int = 0


@dataclass(slots=True)
class RequeueOutcome:
    """What ``requeue_dead_letters`` did, per task id (each id at most once)."""

    requeued: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # id -> SKIPPED_PENDING or SKIPPED_NOT_FOUND


def max_deliveries_reason(times: int, limit: int) -> str:
    return (f"its lease ran out {times} times without the task finishing (max_deliveries={limit}); "
            "it may crash or freeze its worker")


def lost_record(task_id: str, reason: str, fencing_token: int) -> ResultRecord:
    """The FAILURE a dead-lettered task shows, so ``get()`` does not wait for it forever.

    It carries the last delivery's token, so a run after ``celeriac dlq requeue`` (which
    keeps counting deliveries) replaces it.
    """
    return ResultRecord(task_id=task_id, state="FAILURE", exc_type="celeriac.exceptions.WorkerLostError",
                        exc_message=reason, date_done_ms=now_ms(), fencing_token=fencing_token)


@runtime_checkable
class Transport(Protocol):
    """Moving messages: what every broker does, and nothing more."""

    url: str

    async def connect(self) -> None:
        """Open connections and check the server; raise ``BrokerUnavailable`` saying how to fix it."""

    async def close(self) -> None: ...

    async def publish(self, messages: Sequence[OutgoingMessage], *, on_duplicate: str = "error") -> None:
        """Store messages durably before returning.

        A task id that is already scheduled, queued or reserved, or that was published
        with ``unique_for_s`` less than that long ago, raises ``DuplicateTaskError``
        (``on_duplicate="ignore"`` skips it instead). A batch is checked before any of it
        is written.
        """

    async def reserve(
        self, queues: Sequence[str], max_count: int, *, lease_ms: int, worker_id: str, timeout_s: float
    ) -> list[Delivery]:
        """Lease up to ``max_count`` messages, highest priority first, then oldest.

        Due scheduled messages count as queued. Leases that ran out are returned to their
        queue first (or dead-lettered past ``max_deliveries``). With nothing to hand out,
        wait up to ``timeout_s`` for a message without polling the broker in a tight loop.
        """

    async def renew(self, deliveries: Sequence[Delivery], lease_ms: int) -> list[str]:
        """Extend leases in one call; return the ids whose lease this worker no longer holds."""

    async def ack(
        self, deliveries: Sequence[Delivery], results: Sequence[ResultRecord] = ()
    ) -> list[str]:
        """Remove finished messages; return the ids refused because their token is stale.

        ``results`` are written in the same round trip when the app's result store is on
        this broker's server and the server's ``acks_carry_results`` is true; otherwise
        it is empty.
        """

    async def release(self, deliveries: Sequence[Delivery]) -> list[str]:
        """Put reserved messages back at the head of their queue now; return refused ids."""

    async def retry(self, delivery: Delivery, body: bytes, eta_ms: int | None) -> bool:
        """Replace a reserved message by its next attempt (same id) in one step; fenced."""

    async def dead_letter(self, delivery: Delivery, reason: str) -> bool:
        """Move a reserved message to the dead-letter queue with ``reason``; fenced."""

    async def skew_clock(self, ms: int) -> None:
        """Move this client's view of the server's clock ``ms`` forward (cumulative).

        Used by the contract suite to run out leases, etas and unique ids without
        sleeping; zero in production. Leases, etas, unique ids and rate buckets follow it;
        what the server expires by a timer of its own (Redis key TTLs: results, revoked
        ids) need not.
        """


@runtime_checkable
class ControlStore(Protocol):
    """State the workers share beside the messages: revoked ids, rate limits, the event log,
    the per-minute aggregates and the control log.

    "Remember this id until T" is part of the transport's publish (``unique_for_s``),
    because it must be one atomic step with the enqueue.
    """

    async def revoke(self, task_ids: Sequence[str], *, terminate: bool = False) -> None:
        """Remember ids as revoked for ``revoked_ttl_s``; ``terminate`` also stops running ones."""

    async def revoked_among(self, task_ids: Sequence[str]) -> dict[str, bool]:
        """The revoked ids among ``task_ids``, each mapped to its ``terminate`` flag."""

    async def take_rate_token(self, key: str, rate_per_s: float, capacity: float) -> float:
        """Take one token from the bucket ``key`` shared by every worker.

        Returns 0.0 when a token was taken, else the seconds until one will be free. The
        bucket refills at ``rate_per_s`` up to ``capacity``, in the broker's clock.
        """

    async def emit_events(self, events: Sequence[bytes], stats: Sequence[StatsRow] = ()) -> None:
        """Append to the capped event log, dropping the oldest past ``events_max``; with
        ``stats``, also add them to the per-minute aggregates (``record_stats``), in the
        same round trip (a worker's flush writes both at once)."""

    async def read_events(self, after: str | None = None, limit: int = 1000) -> list[tuple[str, bytes]]:
        """Events newer than the id ``after`` (oldest first); with None, the newest ``limit``."""

    async def record_stats(self, rows: Sequence[StatsRow]) -> None:
        """Add ``rows`` to the per-minute aggregates (``celeriac/stats.py``): counts, sums and
        bucket counts are added to what is stored for the same (minute, name, queue).

        Minutes more than ``stats.KEEP_MINUTES`` older than the server's clock are pruned
        (at this call, by housekeeping or by key expiry), never sooner.
        """

    async def read_stats(self, since_minute: int, until_minute: int) -> list[StatsRow]:
        """The aggregates of the minutes from ``since_minute`` to ``until_minute`` (both
        included, epoch minutes), one row per (minute, name, queue), in that order."""

    async def emit_control(self, records: Sequence[bytes]) -> None:
        """Append remote-control records (requests, replies) to the control log, a capped
        log apart from the events, dropping the oldest past ``control_max``."""

    async def read_control(self, after: str | None = None, limit: int = 100) -> list[tuple[str, bytes]]:
        """Control records newer than the id ``after`` (oldest first); with None, the newest ``limit``."""


@runtime_checkable
class QueueAdmin(Protocol):
    """The reads and actions on queues that ``ops.py`` (the CLI, the dashboard) is built on.

    The lease counters of ``queue_stats`` are kept by ``reserve`` (one counter update per
    queue in a reserve call that found leases run out), so reading them costs nothing extra.
    """

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The oldest ``limit`` dead letters, oldest first.

        A task id may have several (it failed, was sent again under the same id, failed
        again): each is kept and listed, none replaces another.
        """

    async def requeue_dead_letters(self, task_ids: Sequence[str] | None = None) -> RequeueOutcome:
        """Put dead letters back on their queue; None means every task id that has one.

        Per task id, only its newest dead letter is requeued (older ones stay listed: one
        id is never queued twice). It keeps its priority and delivery count (so fencing
        tokens go on rising) and its run-out leases count from zero. An id with a message
        scheduled, queued or reserved is skipped and keeps its dead letters.
        """

    async def purge_dead_letters(self) -> int:
        """Drop every dead letter; return how many."""

    async def purge(self, queue: str) -> int:
        """Drop every queued and scheduled message of ``queue``; return how many."""

    async def queue_depths(self) -> dict[str, int]:
        """Queued-plus-scheduled counts per queue."""

    async def queue_stats(self) -> dict[str, QueueStats]:
        """Every queue that holds a message or a dead letter, or whose leases ever ran out:
        its queued, scheduled and leased counts, its oldest queued message's due time, its
        dead letters and its lease counters (``QueueStats``), read in one consistent look
        where the server allows."""

    async def dead_letter_count(self) -> int:
        """How many dead letters there are (every one, several of one task id included)."""


@runtime_checkable
class Broker(Transport, ControlStore, QueueAdmin, Protocol):
    """A server that carries messages and keeps the control state and queue admin beside them
    (memory, SQLite, Redis)."""


@runtime_checkable
class ResultStore(Protocol):
    url: str

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def store(self, records: Sequence[ResultRecord]) -> list[str]:
        """Write records (kept for ``result_expires``); return the ids refused as stale."""

    async def fetch(self, task_id: str) -> ResultRecord | None: ...

    async def fetch_many(self, task_ids: Sequence[str]) -> dict[str, ResultRecord]: ...

    async def wait_ready(self, task_id: str, timeout_s: float | None) -> ResultRecord | None:
        """Return the record once it is ready (or at ``timeout_s``, whatever it is then).

        Wakes on a notification where the store has one; otherwise polls with a bounded
        back-off.
        """

    async def forget(self, task_id: str) -> None: ...

    async def record_group_member(
        self, group_id: str, member_id: str, total: int, record: ResultRecord
    ) -> GroupProgress:
        """Store ``record`` and add ``member_id`` to the group's finished set, atomically.

        Idempotent: a member recorded twice counts once, and ``is_newly_complete`` is true
        for exactly one call, the one that made the set reach ``total``.
        """

    async def save_group(self, group_id: str, member_ids: Sequence[str]) -> None: ...

    async def restore_group(self, group_id: str) -> list[str] | None: ...


@runtime_checkable
class Server(Protocol):
    """One server, opened from its URL: it hands out the roles it supports.

    A broker and a result store it hands out share its connection, and its class says
    whether an ack and the results written with it are one round trip.
    """

    url: str
    acks_carry_results: bool  # whether transport().ack(results=...) writes into results()

    def holds(self, url: str) -> bool:
        """Whether ``url`` names this server's data (then ``results()`` serves it)."""

    def transport(self, options: BrokerOptions) -> Broker:
        """The broker role, with its control state and queue admin; raises
        ``ConfigurationError`` where the server holds results only."""

    def results(self, expires_s: float | None) -> ResultStore: ...
