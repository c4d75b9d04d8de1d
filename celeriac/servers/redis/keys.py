"""Every Redis key and channel celeriac uses, in one module (as arq's ``constants.py``).

``P`` is the URL's ``key_prefix`` (default ``celeriac``), ``Q`` a queue name.

Per queue, all under the hash tag ``{P:Q}`` so one queue lives in one Redis Cluster slot:

    {P:Q}:ready         ZSET  task id -> ready score: priority band, then sequence
                              (9 first; FIFO within a priority; see ready_score.lua)
    {P:Q}:scheduled     ZSET  task id -> eta in ms (server clock); no lease before due
    {P:Q}:leases        ZSET  task id -> lease deadline in ms (server clock)
    {P:Q}:bodies        HASH  task id -> message body (present = the id is pending)
    {P:Q}:priorities    HASH  task id -> priority 0-9
    {P:Q}:deliveries    HASH  task id -> delivery count = the fencing token
    {P:Q}:expiries      HASH  task id -> leases run out since its last retry (max_deliveries)
    {P:Q}:unique        ZSET  id published with unique_for_s -> remembered until, ms
    {P:Q}:seq           STR   last sequence number handed out in this queue
    {P:Q}:wake          LIST  tokens that wake idle reservers blocked in BLPOP
    {P:Q}:dead          ZSET  dead letter "<task id>\\0<n>" -> failed at (us, kept above the newest)
    {P:Q}:dead-letters  HASH  dead letter -> "<priority>:<deliveries>:<len(reason)>:<reason><body>";
                              n counts one id's dead letters from 1, the highest the newest
                              (a bare "<task id>" entry, from before n, counts as n = 0)
    {P:Q}:counters      HASH  "expired": leases run out (counted by reserve), "reclaimed": of
                              those, the ones put back on the queue; they only grow
    {P:Q}:call:<id>     STR   the reply of one publish, ack, release, retry or dead-letter call
                              (<id>: 32 random hex digits, new for each call of the broker's
                              method, the same in every retry of it), kept for call_memory_ms
                              so a retry after a lost reply is answered without running again
                              (see once.lua)

Global:

    {P}:queues             SET   every queue name published to (for depths and the DLQ)
    {P}:events             STREAM the capped event log, field "e" holding one event
    {P}:control            STREAM the capped control log (remote-control requests, replies), field "e"
    {P}:stats:<minute>     HASH  per-minute aggregates of one epoch minute: "<name>\\0<queue>\\0<metric>"
                                 -> number (celeriac/stats.py), expiring KEEP_MINUTES after written
    {P}:call:<id>          STR   as {P:Q}:call:<id>, for an ack that names no message
    {P:revoked}:<id>       STR   "1" (terminate) or "0", expiring after revoked_ttl_s
    P:result:<id>          STR   the msgspec-JSON ResultRecord, expiring after result_expires
    P:group:<id>           STR   JSON list of a saved group's member ids, same expiry
    P:group-done:<id>      SET   finished member ids of a group/chord header, same expiry
    P:rate:<key>           HASH  a rate-limit token bucket (tokens, updated_at_ms)

Channel ``P:result-ready:<id>`` gets a PUBLISH whenever a ready record is written.

Result and group keys carry no hash tag so they spread over a cluster's slots. Scripts
that touch several queues at once, or a queue and results (reserve from many queues,
ack with results, a group member's record and its set), assume one server: standalone or
behind Sentinel.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class QueueKeys:
    ready: str
    scheduled: str
    leases: str
    bodies: str
    priorities: str
    deliveries: str
    expiries: str
    unique: str
    seq: str
    wake: str
    dead: str
    dead_letters: str
    counters: str
    call_prefix: str

    def call(self, call_id: str) -> str:
        return self.call_prefix + call_id


def queue_keys(prefix: str, queue: str) -> QueueKeys:
    tag = f"{{{prefix}:{queue}}}"
    return QueueKeys(
        ready=f"{tag}:ready",
        scheduled=f"{tag}:scheduled",
        leases=f"{tag}:leases",
        bodies=f"{tag}:bodies",
        priorities=f"{tag}:priorities",
        deliveries=f"{tag}:deliveries",
        expiries=f"{tag}:expiries",
        unique=f"{tag}:unique",
        seq=f"{tag}:seq",
        wake=f"{tag}:wake",
        dead=f"{tag}:dead",
        dead_letters=f"{tag}:dead-letters",
        counters=f"{tag}:counters",
        call_prefix=f"{tag}:call:",
    )


class Keys:
    """Key names for one ``key_prefix``; queue keys are built once per queue."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.queues = f"{{{prefix}}}:queues"
        self.events = f"{{{prefix}}}:events"
        self.control = f"{{{prefix}}}:control"
        self.stats_prefix = f"{{{prefix}}}:stats:"
        self.call_prefix = f"{{{prefix}}}:call:"
        self.revoked_prefix = f"{{{prefix}:revoked}}:"
        self.result_prefix = f"{prefix}:result:"
        self.result_channel_prefix = f"{prefix}:result-ready:"
        self.group_prefix = f"{prefix}:group:"
        self.group_done_prefix = f"{prefix}:group-done:"
        self.rate_prefix = f"{prefix}:rate:"
        self._queues: dict[str, QueueKeys] = {}

    def queue(self, name: str) -> QueueKeys:
        found = self._queues.get(name)
        if found is None:
            found = self._queues[name] = queue_keys(self.prefix, name)
        return found

    def call(self, call_id: str) -> str:
        return self.call_prefix + call_id

    def stats(self, minute: int) -> str:
        return f"{self.stats_prefix}{minute}"

    def revoked(self, task_id: str) -> str:
        return self.revoked_prefix + task_id

    def result(self, task_id: str) -> str:
        return self.result_prefix + task_id

    def result_channel(self, task_id: str) -> str:
        return self.result_channel_prefix + task_id

    def group(self, group_id: str) -> str:
        return self.group_prefix + group_id

    def group_done(self, group_id: str) -> str:
        return self.group_done_prefix + group_id

    def rate_bucket(self, key: str) -> str:
        return self.rate_prefix + key
