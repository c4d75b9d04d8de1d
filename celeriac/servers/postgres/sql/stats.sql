-- The per-minute aggregates, the control log and the queue statistics (transport.py).

-- name: add_stats
-- Append events and add numbers to the per-minute aggregates of this client's shard, in
-- one statement (either may be empty): a worker's flush writes both at once.
-- The events go in as one row (0004_event_batches.sql), which takes one number of
-- event_seq per event and is keyed by the last; the rows whose events are all older than
-- the newest %(events_max)s are dropped, a range of the primary key. The delete cannot
-- see the row this statement adds, so of a batch longer than the cap only its newest are
-- added. The numbers come sorted by key, so two writers sharing a shard lock its rows in
-- the same order.
WITH batch AS (
    SELECT b.bodies,
           (SELECT max(nextval('{schema}.event_seq')) FROM generate_series(1, cardinality(b.bodies))) AS last_seq
    FROM (SELECT (%(events)s::bytea[])[greatest(cardinality(%(events)s::bytea[]) - %(events_max)s, 0) + 1:]
          AS bodies) b
    WHERE cardinality(b.bodies) > 0
), added AS (
    INSERT INTO {schema}.events (last_seq, bodies) SELECT last_seq, bodies FROM batch RETURNING last_seq
), trimmed AS (
    DELETE FROM {schema}.events WHERE last_seq <= (SELECT max(a.last_seq) FROM added a) - %(events_max)s
)
INSERT INTO {schema}.stats AS s (minute, name, queue, metric, shard, value)
SELECT i.minute, i.name, i.queue, i.metric, %(shard)s, i.value
FROM unnest(%(minutes)s::integer[], %(names)s::text[], %(queues)s::text[], %(metrics)s::text[],
            %(values)s::float8[]) WITH ORDINALITY AS i (minute, name, queue, metric, value, n)
ORDER BY i.n
ON CONFLICT (minute, name, queue, metric, shard) DO UPDATE SET value = s.value + excluded.value;

-- name: read_stats
-- The minutes from %(since)s to %(until)s, both included, the shards summed.
SELECT s.minute, s.name, s.queue, s.metric, sum(s.value) FROM {schema}.stats s
WHERE s.minute BETWEEN %(since)s AND %(until)s
GROUP BY s.minute, s.name, s.queue, s.metric;

-- name: old_stats
-- Housekeeping: minutes older than %(keep_minutes)s before now.
DELETE FROM {schema}.stats WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM {schema}.stats
    WHERE minute < (extract(epoch FROM {now})::bigint / 60) - %(keep_minutes)s
    LIMIT %(batch)s FOR UPDATE SKIP LOCKED));

-- name: emit_control
-- Append control records and drop those older than the newest %(control_max)s.
WITH added AS (
    INSERT INTO {schema}.control (body)
    SELECT r.body FROM unnest(%(records)s::bytea[]) WITH ORDINALITY AS r (body, n)
    WHERE r.n > cardinality(%(records)s::bytea[]) - %(control_max)s
    ORDER BY r.n
    RETURNING id
)
DELETE FROM {schema}.control WHERE id <= (SELECT max(a.id) FROM added a) - %(control_max)s;

-- name: newest_control
SELECT c.id, c.body FROM (
    SELECT id, body FROM {schema}.control ORDER BY id DESC LIMIT %(limit)s
) c ORDER BY c.id;

-- name: control_after
SELECT id, body FROM {schema}.control WHERE id > %(after)s ORDER BY id LIMIT %(limit)s;

-- name: queue_stats
-- Per queue: queued (due now), scheduled (eta ahead), leased, when the oldest queued
-- message became due (released ones, at -infinity, left out), dead letters and the lease
-- counters, every queue that has any of them. One statement: one snapshot.
WITH m AS (
    SELECT m.queue,
           count(*) FILTER (WHERE m.state = {queued} AND m.available_at <= {now}) AS queued,
           count(*) FILTER (WHERE m.state = {queued} AND m.available_at > {now}) AS scheduled,
           count(*) FILTER (WHERE m.state = {reserved}) AS leased,
           min(m.available_at) FILTER (WHERE m.state = {queued} AND m.available_at <= {now}
                                       AND m.available_at > '-infinity') AS oldest
    FROM {schema}.messages m GROUP BY m.queue
), d AS (
    SELECT d.queue, count(*) AS dead FROM {schema}.dead_letters d GROUP BY d.queue
), q AS (
    SELECT m.queue FROM m UNION SELECT d.queue FROM d UNION SELECT c.queue FROM {schema}.lease_counters c
)
SELECT q.queue, coalesce(m.queued, 0), coalesce(m.scheduled, 0), coalesce(m.leased, 0), m.oldest,
       coalesce(d.dead, 0), coalesce(c.expired, 0), coalesce(c.reclaimed, 0)
FROM q
LEFT JOIN m ON m.queue = q.queue
LEFT JOIN d ON d.queue = q.queue
LEFT JOIN {schema}.lease_counters c ON c.queue = q.queue;

-- name: count_dead_letters
SELECT count(*) FROM {schema}.dead_letters;
