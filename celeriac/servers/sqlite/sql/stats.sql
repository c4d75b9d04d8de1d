-- The per-minute aggregates, the control log and the queue statistics (transport.py).

-- name: add-stat
-- Parameters: minute, task name, queue, metric, the number to add (celeriac/stats.py).
INSERT INTO celeriac_stats (minute, name, queue, metric, value) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (minute, name, queue, metric) DO UPDATE SET value = value + excluded.value;

-- name: read-stats
-- Parameters: the first and the last minute, both included.
SELECT minute, name, queue, metric, value FROM celeriac_stats WHERE minute BETWEEN ? AND ?;

-- name: purge-old-stats
-- Housekeeping: minutes older than {STATS_KEEP_MINUTES} before now. Parameters: now (ms), batch size.
DELETE FROM celeriac_stats WHERE (minute, name, queue, metric) IN
    (SELECT minute, name, queue, metric FROM celeriac_stats
     WHERE minute < ? / 60000 - {STATS_KEEP_MINUTES} LIMIT ?);

-- name: append-control
INSERT INTO celeriac_control (body) VALUES (?);

-- name: last-control-id
SELECT max(id) FROM celeriac_control;

-- name: drop-control-up-to
DELETE FROM celeriac_control WHERE id <= ?;

-- name: newest-control
SELECT id, body FROM (SELECT id, body FROM celeriac_control ORDER BY id DESC LIMIT ?) ORDER BY id;

-- name: control-after
SELECT id, body FROM celeriac_control WHERE id > ? ORDER BY id LIMIT ?;

-- name: count-lease-expiries
-- Reserve, before reclaiming: the leases run out now, per queue. Parameters: now.
SELECT queue, count(*) FROM celeriac_messages
WHERE state = {RESERVED} AND lease_expires_at_ms <= ? GROUP BY queue;

-- name: add-lease-expiries
-- Parameters: queue, leases run out, of those put back on the queue.
INSERT INTO celeriac_lease_counters (queue, expired, reclaimed) VALUES (?, ?, ?)
ON CONFLICT (queue) DO UPDATE SET expired = expired + excluded.expired,
    reclaimed = reclaimed + excluded.reclaimed;

-- name: message-stats
-- Per queue: queued (due now, scheduled ones whose eta passed included), scheduled,
-- leased, and when the oldest queued message became due (released ones, at
-- available_at_ms 0, left out). Parameters: now three times.
SELECT queue,
    sum(state = {QUEUED} OR (state = {SCHEDULED} AND available_at_ms <= ?)),
    sum(state = {SCHEDULED} AND available_at_ms > ?),
    sum(state = {RESERVED}),
    min(CASE WHEN (state = {QUEUED} OR (state = {SCHEDULED} AND available_at_ms <= ?)) AND available_at_ms > 0
        THEN available_at_ms END)
FROM celeriac_messages GROUP BY queue;

-- name: dead-letters-per-queue
SELECT queue, count(*) FROM celeriac_dead_letters GROUP BY queue;

-- name: lease-counters
SELECT queue, expired, reclaimed FROM celeriac_lease_counters;

-- name: count-dead-letters
SELECT count(*) FROM celeriac_dead_letters;

-- name: begin-read
-- A read transaction: queue_stats reads its three tables in one snapshot.
BEGIN DEFERRED;
