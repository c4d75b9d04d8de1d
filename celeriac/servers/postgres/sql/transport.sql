-- The broker's statements (transport.py runs them by name). Each is one statement, so
-- each is atomic and one round trip; several steps are chained as data-modifying CTEs.
-- {now} is the database's clock plus this client's skew (connection.py), the only clock
-- a deadline is ever measured in. Results are written with the fence of results.sql:
-- a lower token loses, and with the same token a finished state is never replaced by an
-- unfinished one.

-- name: publish
-- A batch of messages (one array per column), checked and written in one statement.
-- An id that is already scheduled, queued or reserved (the primary key) or remembered
-- through unique_for_s is skipped; with %(refuse)s true, the first one skipped raises
-- instead (refuse_duplicate), which rolls back the whole batch. Ids repeated within the
-- batch are dealt with before (transport.py). Each queue that got a message is notified
-- in the same transaction, so its listeners wake after the commit, never before.
WITH batch AS (
    SELECT b.task_id, b.queue, b.body, b.priority, b.eta, b.unique_ms, b.n
    FROM unnest(%(task_ids)s::text[], %(queues)s::text[], %(bodies)s::bytea[], %(priorities)s::smallint[],
                %(etas)s::timestamptz[], %(unique_ms)s::bigint[])
         WITH ORDINALITY AS b (task_id, queue, body, priority, eta, unique_ms, n)
), remembered AS (
    SELECT u.task_id FROM {schema}.unique_ids u
    WHERE u.task_id = ANY (%(task_ids)s::text[]) AND u.remembered_until > {now}
), inserted AS (
    INSERT INTO {schema}.messages AS m (task_id, queue, body, priority, state, available_at)
    SELECT b.task_id, b.queue, b.body, b.priority, {queued}, coalesce(b.eta, {now})
    FROM batch b
    WHERE b.task_id NOT IN (SELECT r.task_id FROM remembered r)
    ORDER BY b.n
    ON CONFLICT (task_id) DO NOTHING
    RETURNING m.task_id, m.queue
), remembering AS (
    -- An expired row of the same id is overwritten; housekeeping deletes the others.
    INSERT INTO {schema}.unique_ids AS u (task_id, remembered_until)
    SELECT b.task_id, {now} + b.unique_ms * interval '1 millisecond'
    FROM batch b JOIN inserted i ON i.task_id = b.task_id
    WHERE b.unique_ms IS NOT NULL
    ON CONFLICT (task_id) DO UPDATE SET remembered_until = excluded.remembered_until
), notices AS (
    SELECT pg_notify({schema}.queue_channel(q.queue), '')
    FROM (SELECT DISTINCT i.queue FROM inserted i) q
)
SELECT
    (SELECT count(*) FROM notices) AS notified,
    (SELECT {schema}.refuse_duplicate(b.task_id, b.task_id IN (SELECT r.task_id FROM remembered r))
     FROM batch b
     WHERE %(refuse)s::boolean AND b.task_id NOT IN (SELECT i.task_id FROM inserted i)
       -- Sent again after a lost reply: the first attempt's own message is no duplicate.
       AND NOT (%(resent)s::boolean AND EXISTS (
           SELECT 1 FROM {schema}.messages m WHERE m.task_id = b.task_id AND m.body = b.body))
     ORDER BY b.n LIMIT 1) AS refused;

-- name: reclaim
-- Leases that ran out (any queue, oldest first, a bounded batch) go back to their queue
-- at the tail of their priority, one more run-out lease counted; or, once max_deliveries
-- of them ran out, to the dead letters with a FAILURE result, so that get() does not wait
-- forever. A worker runs this before a reserve when it is due (transport.py,
-- RECLAIM_EVERY_S): about once a second, and whenever its wait for messages was cut short
-- by the earliest lease deadline (or eta) it knew of. Kept out of
-- reserve because a plan this size costs every reserve about 0.4 ms even when nothing
-- ran out: a fifth of an idle worker's time from a notification to its task's start.
-- One row: how many leases were taken back or dead-lettered.
WITH expired AS (
    SELECT e.task_id FROM {schema}.messages e
    WHERE e.state = {reserved} AND e.lease_until <= {now}  -- through messages_leases
    ORDER BY e.lease_until
    LIMIT 1000
    FOR UPDATE SKIP LOCKED
), doomed AS (
    DELETE FROM {schema}.messages m USING expired e
    WHERE m.task_id = e.task_id AND m.expired_count + 1 >= %(max_deliveries)s
    RETURNING m.task_id, m.queue, m.body, m.priority, m.delivery_count,
              replace(%(reason_template)s, '@times@', (m.expired_count + 1)::text) AS reason
), buried AS (
    INSERT INTO {schema}.dead_letters (task_id, queue, body, reason, failed_at, delivery_count, priority)
    SELECT d.task_id, d.queue, d.body, d.reason, {now}, d.delivery_count, d.priority
    FROM doomed d
    RETURNING task_id
), lost AS (
    -- The record is message.py's own JSON with placeholders (transport.py, lost_template),
    -- filled in here: the id and the reason as JSON strings, the time, the token.
    INSERT INTO {schema}.results AS r (task_id, is_ready, fencing_token, record, expires_at)
    SELECT d.task_id, true, d.delivery_count,
           convert_to(replace(replace(replace(replace(%(record_template)s,
               '"@celeriac-task-id@"', to_json(d.task_id)::text),
               '"@celeriac-reason@"', to_json(d.reason)::text),
               '1111111111111', (extract(epoch FROM {now}) * 1000)::bigint::text),
               '2222222222', d.delivery_count::text), 'UTF8'),
           {now} + %(result_expires_ms)s::bigint * interval '1 millisecond'
    FROM doomed d
    ON CONFLICT (task_id) DO UPDATE SET is_ready = excluded.is_ready, fencing_token = excluded.fencing_token,
        record = excluded.record, expires_at = excluded.expires_at
    WHERE {result_fence}
    RETURNING r.task_id
), lost_notices AS (
    SELECT pg_notify('{results_channel}', l.task_id) FROM lost l WHERE octet_length(l.task_id) < {max_payload}
), reclaimed AS (
    UPDATE {schema}.messages m
    SET state = {queued}, expired_count = m.expired_count + 1, lease_until = NULL, worker_id = NULL,
        available_at = {now}
    FROM expired e
    WHERE m.task_id = e.task_id AND m.expired_count + 1 < %(max_deliveries)s
    RETURNING m.task_id, m.queue
), counted AS (
    -- Leases run out per queue, and of those the ones put back, for queue_stats (stats.sql).
    INSERT INTO {schema}.lease_counters AS c (queue, expired, reclaimed)
    SELECT x.queue, count(*), count(*) FILTER (WHERE x.back)
    FROM (SELECT r.queue, true AS back FROM reclaimed r UNION ALL SELECT d.queue, false FROM doomed d) x
    GROUP BY x.queue
    ORDER BY x.queue
    ON CONFLICT (queue) DO UPDATE SET expired = c.expired + excluded.expired,
        reclaimed = c.reclaimed + excluded.reclaimed
)
SELECT (SELECT count(*) FROM reclaimed) + (SELECT count(*) FROM buried) + 0 * (SELECT count(*) FROM lost_notices);

-- name: reserve
-- Lease up to %(max_count)s messages of the queues asked for, in one statement: the best
-- due queued messages (priority 9 first, then oldest) are locked, skipping rows other
-- workers hold, and leased: delivery count + 1 (the fencing token), lease deadline = now
-- + lease_ms. Scheduled messages that are due are simply queued ones whose available_at
-- has passed. Each leased id's revoked check is answered too, saving the worker a round
-- trip. Leases that ran out are taken back by reclaim, not here.
-- Rows: one per message leased, with its hand-out order (rank). With none, the caller
-- asks reserve_status how long it may wait.
-- A reserve also takes back the caller's offer to be handed messages (0006_handoff.sql):
-- from here on it leases for itself, and reserve_status offers again before it waits.
WITH withdrawn AS (
    UPDATE {schema}.waiters w SET free = 0 WHERE w.worker_id = %(worker_id)s AND w.free > 0
), picked AS (
    -- Per queue the index hands its best rows in order; the outer ORDER BY merges them.
    SELECT c.task_id
    FROM unnest(%(queues)s::text[]) AS q (name)
    CROSS JOIN LATERAL (
        SELECT m.task_id, m.priority, m.available_at, m.seq FROM {schema}.messages m
        WHERE m.state = {queued} AND m.queue = q.name AND m.available_at <= {now}
        ORDER BY m.priority DESC, m.available_at, m.seq
        LIMIT %(max_count)s
        FOR UPDATE SKIP LOCKED
    ) c
    ORDER BY c.priority DESC, c.available_at, c.seq
    LIMIT %(max_count)s
), taken AS (
    UPDATE {schema}.messages m
    SET state = {reserved}, delivery_count = m.delivery_count + 1,
        lease_until = {now} + %(lease_ms)s::bigint * interval '1 millisecond', worker_id = %(worker_id)s
    -- An array, not a join with picked: the plan is generic (the same for every
    -- max_count), and a join's estimate of picked (a tenth of the queue) chose to hash
    -- the whole table, read in full on every reserve: 35 ms with 74,000 queued. An array
    -- is always probed through the primary key.
    WHERE m.task_id = ANY (ARRAY(SELECT p.task_id FROM picked p))
    RETURNING m.task_id, m.queue, m.body, m.delivery_count, m.lease_until, m.priority, m.available_at, m.seq
)
SELECT t.task_id, t.queue, t.body, t.delivery_count, t.lease_until,
       EXISTS (SELECT 1 FROM {schema}.revoked v WHERE v.task_id = t.task_id AND v.expires_at > {now}) AS is_revoked,
       row_number() OVER (ORDER BY t.priority DESC, t.available_at, t.seq) AS rank
FROM taken t;

-- name: reserve_status
-- After a reserve that leased nothing: the database's now, and the next time something
-- becomes due here (a scheduled message of these queues, or any lease running out), for
-- the caller's wait. Apart from reserve, which it would cost about 0.1 ms on every wake-up.
-- With a %(channel)s (the caller listens for hand-offs), it also offers the caller's
-- %(free)s slots to publishers until %(offer_ms)s from now (0006_handoff.sql).
WITH offered AS (
    INSERT INTO {schema}.waiters AS w (worker_id, channel, queues, free, lease_ms, until)
    SELECT %(worker_id)s, %(channel)s, %(queues)s::text[], %(free)s, %(handoff_ms)s,
           {now} + %(offer_ms)s::bigint * interval '1 millisecond'
    WHERE %(channel)s::text IS NOT NULL
    ON CONFLICT (worker_id) DO UPDATE
    SET channel = excluded.channel, queues = excluded.queues, free = excluded.free,
        lease_ms = excluded.lease_ms, until = excluded.until
)
SELECT {now}, least(
    (SELECT min(l.lease_until) FROM {schema}.messages l WHERE l.lease_until IS NOT NULL),  -- messages_leases
    -- The earliest eta still ahead: one index probe per queue and priority.
    (SELECT min(s.available_at)
     FROM unnest(%(queues)s::text[]) AS q (name)
     CROSS JOIN generate_series(0, 9) AS p (priority)
     CROSS JOIN LATERAL (
         SELECT m.available_at FROM {schema}.messages m
         WHERE m.state = {queued} AND m.queue = q.name AND m.priority = p.priority
           AND m.available_at > {now}
         ORDER BY m.available_at
         LIMIT 1
     ) s));

-- name: renew
-- Extend the leases this worker still holds; the rows returned are the ones renewed.
UPDATE {schema}.messages m
SET lease_until = {now} + %(lease_ms)s::bigint * interval '1 millisecond'
FROM unnest(%(task_ids)s::text[], %(tokens)s::integer[]) AS d (task_id, token)
WHERE m.task_id = d.task_id AND m.delivery_count = d.token AND m.state = {reserved}
RETURNING m.task_id, m.lease_until;

-- name: ack
-- Delete finished messages (fenced) and write their results in the same statement. A
-- result whose ack was refused is dropped (a newer delivery owns that task now); a
-- result for an id that was not acked here is written as it is. Ready results are
-- announced on the results channel for wait_ready.
WITH acked AS (
    DELETE FROM {schema}.messages m
    USING unnest(%(task_ids)s::text[], %(tokens)s::integer[]) AS d (task_id, token)
    WHERE m.task_id = d.task_id AND m.delivery_count = d.token AND m.state = {reserved}
    RETURNING m.task_id
), incoming AS (
    SELECT i.task_id, i.is_ready, i.fencing_token, i.record
    FROM unnest(%(result_ids)s::text[], %(result_ready)s::boolean[], %(result_tokens)s::bigint[],
                %(records)s::bytea[]) AS i (task_id, is_ready, fencing_token, record)
    WHERE i.task_id IN (SELECT a.task_id FROM acked a) OR i.task_id <> ALL (%(task_ids)s::text[])
), written AS (
    INSERT INTO {schema}.results AS r (task_id, is_ready, fencing_token, record, expires_at)
    SELECT i.task_id, i.is_ready, i.fencing_token, i.record,
           {now} + %(expires_ms)s::bigint * interval '1 millisecond'
    FROM incoming i
    ON CONFLICT (task_id) DO UPDATE SET is_ready = excluded.is_ready, fencing_token = excluded.fencing_token,
        record = excluded.record, expires_at = excluded.expires_at
    WHERE {result_fence}
    RETURNING r.task_id, r.is_ready
), notices AS (
    SELECT pg_notify('{results_channel}', w.task_id) FROM written w
    WHERE w.is_ready AND octet_length(w.task_id) < {max_payload}
)
SELECT array(SELECT d.task_id FROM unnest(%(task_ids)s::text[]) AS d (task_id)
             WHERE d.task_id NOT IN (SELECT a.task_id FROM acked a)) AS refused,
       (SELECT count(*) FROM notices) AS notified;

-- name: withdraw_offers
-- A closing client's offers to be handed messages (0006_handoff.sql) end now.
DELETE FROM {schema}.waiters WHERE worker_id = ANY (%(worker_ids)s::text[]);

-- name: release
-- Put reserved messages back at the head of their queue now (available_at -infinity:
-- ahead of everything of their priority), without counting a run-out lease.
WITH released AS (
    UPDATE {schema}.messages m
    SET state = {queued}, lease_until = NULL, worker_id = NULL, available_at = '-infinity'
    FROM unnest(%(task_ids)s::text[], %(tokens)s::integer[]) AS d (task_id, token)
    WHERE m.task_id = d.task_id AND m.delivery_count = d.token AND m.state = {reserved}
    RETURNING m.task_id, m.queue
), notices AS (
    SELECT pg_notify({schema}.queue_channel(q.queue), '') FROM (SELECT DISTINCT r.queue FROM released r) q
)
SELECT array(SELECT r.task_id FROM released r) AS released, (SELECT count(*) FROM notices) AS notified;

-- name: retry
-- Replace a reserved message by its next attempt: same id, new body, queued now or
-- scheduled for its eta; the run-out leases count from zero again.
WITH retried AS (
    UPDATE {schema}.messages m
    SET state = {queued}, body = %(body)s, available_at = coalesce(%(eta)s::timestamptz, {now}),
        lease_until = NULL, worker_id = NULL, expired_count = 0
    WHERE m.task_id = %(task_id)s AND m.delivery_count = %(token)s AND m.state = {reserved}
    RETURNING m.queue
), notices AS (
    SELECT pg_notify({schema}.queue_channel(r.queue), '') FROM retried r
)
SELECT (SELECT count(*) FROM retried) AS retried, (SELECT count(*) FROM notices) AS notified;

-- name: dead_letter
-- Move a reserved message to the dead letters with the reason; fenced.
WITH gone AS (
    DELETE FROM {schema}.messages m
    WHERE m.task_id = %(task_id)s AND m.delivery_count = %(token)s AND m.state = {reserved}
    RETURNING m.task_id, m.queue, m.body, m.priority, m.delivery_count
)
INSERT INTO {schema}.dead_letters (task_id, queue, body, reason, failed_at, delivery_count, priority)
SELECT g.task_id, g.queue, g.body, %(reason)s, {now}, g.delivery_count, g.priority FROM gone g;

-- name: revoke
INSERT INTO {schema}.revoked AS v (task_id, expires_at, terminate)
SELECT t.task_id, {now} + %(ttl_ms)s::bigint * interval '1 millisecond', %(terminate)s
FROM unnest(%(task_ids)s::text[]) AS t (task_id)
ON CONFLICT (task_id) DO UPDATE SET expires_at = excluded.expires_at, terminate = excluded.terminate;

-- name: revoked_among
SELECT v.task_id, v.terminate FROM {schema}.revoked v
WHERE v.task_id = ANY (%(task_ids)s::text[]) AND v.expires_at > {now};

-- name: dead_letters
SELECT d.task_id, d.queue, d.body, d.reason, d.failed_at, d.delivery_count, d.priority
FROM {schema}.dead_letters d
ORDER BY d.id
LIMIT %(limit)s;

-- name: requeue_dead_letters
-- Per task id asked for (or, with %(everything)s, every id that has a dead letter, the
-- oldest first), its newest dead letter goes back to its queue with its priority and
-- delivery count; its run-out leases count from zero. An id with a message already
-- scheduled, queued or reserved keeps its dead letters: the insert skips it (the primary
-- key, so a publish racing this one cannot be lost), and only the dead letters of the
-- rows inserted are deleted. Returns each id with what happened to it, in order.
WITH wanted AS (
    SELECT w.task_id, w.n
    FROM unnest(%(task_ids)s::text[]) WITH ORDINALITY AS w (task_id, n)
    WHERE NOT %(everything)s::boolean
    UNION ALL
    SELECT d.task_id, min(d.id) FROM {schema}.dead_letters d
    WHERE %(everything)s::boolean
    GROUP BY d.task_id
), newest AS (
    SELECT d.task_id, max(d.id) AS id FROM {schema}.dead_letters d
    WHERE d.task_id IN (SELECT w.task_id FROM wanted w)
    GROUP BY d.task_id
), requeued AS (
    INSERT INTO {schema}.messages AS m (task_id, queue, body, priority, state, available_at, delivery_count)
    SELECT d.task_id, d.queue, d.body, d.priority, {queued}, {now}, d.delivery_count
    FROM newest n JOIN {schema}.dead_letters d ON d.id = n.id
    ORDER BY n.id
    ON CONFLICT (task_id) DO NOTHING
    RETURNING m.task_id, m.queue
), removed AS (
    DELETE FROM {schema}.dead_letters d USING newest n
    WHERE d.id = n.id AND n.task_id IN (SELECT r.task_id FROM requeued r)
), notices AS (
    SELECT pg_notify({schema}.queue_channel(q.queue), '') FROM (SELECT DISTINCT r.queue FROM requeued r) q
)
SELECT w.task_id,
       CASE WHEN r.task_id IS NOT NULL THEN 'requeued' WHEN n.task_id IS NULL THEN 'not found' ELSE 'pending' END,
       r.queue, (SELECT count(*) FROM notices)
FROM wanted w
LEFT JOIN requeued r ON r.task_id = w.task_id
LEFT JOIN newest n ON n.task_id = w.task_id
ORDER BY w.n;

-- name: purge_dead_letters
DELETE FROM {schema}.dead_letters;

-- name: purge
-- Queued and scheduled messages of one queue; reserved ones are left to their workers.
DELETE FROM {schema}.messages m WHERE m.queue = %(queue)s AND m.state = {queued};

-- name: queue_depths
SELECT m.queue, count(*) FROM {schema}.messages m WHERE m.state = {queued} GROUP BY m.queue;

-- name: take_rate_token
-- Take one token from a bucket shared by every worker: it starts full and refills at
-- %(rate)s per second up to %(capacity)s, in the database's clock. The upsert holds the
-- row lock, so two workers never take the same token.
INSERT INTO {schema}.rate_buckets AS b (key, tokens, updated_at, full_at, took)
SELECT %(key)s, %(capacity)s::float8 - t.took::int, {now},
       {now} + (t.took::int / %(rate)s::float8) * interval '1 second', t.took
FROM (SELECT %(capacity)s::float8 >= 1 AS took) t
ON CONFLICT (key) DO UPDATE SET (tokens, updated_at, full_at, took) = (
    SELECT l.level - t.took::int, {now},
           {now} + ((%(capacity)s::float8 - (l.level - t.took::int)) / %(rate)s::float8) * interval '1 second',
           t.took
    FROM (SELECT least(%(capacity)s::float8,
                       b.tokens + extract(epoch FROM {now} - b.updated_at)::float8 * %(rate)s::float8) AS level) l
    CROSS JOIN LATERAL (SELECT l.level >= 1 AS took) t
)
RETURNING b.tokens, b.took;

-- name: newest_events
-- The newest %(limit)s events, newest first: (row, place in the row, body).
SELECT e.last_seq, u.n, u.body
FROM {schema}.events e CROSS JOIN LATERAL unnest(e.bodies) WITH ORDINALITY AS u (body, n)
ORDER BY e.last_seq DESC, u.n DESC
LIMIT %(limit)s;

-- name: events_after
-- The events after the one at (%(row)s, %(n)s), oldest first.
SELECT e.last_seq, u.n, u.body
FROM {schema}.events e CROSS JOIN LATERAL unnest(e.bodies) WITH ORDINALITY AS u (body, n)
WHERE e.last_seq >= %(row)s AND (e.last_seq > %(row)s OR u.n > %(n)s)
ORDER BY e.last_seq, u.n
LIMIT %(limit)s;

-- name: publish_begin
-- A large batch is published by COPY (transport.py, publish_by_copy), in a transaction
-- that starts with this statement: the database's now, the available_at of the messages
-- with no eta (the same now() publish would use: the transaction's start).
SELECT {now};

-- name: publish_copy
COPY {schema}.messages (task_id, queue, body, priority, available_at) FROM STDIN (FORMAT BINARY);

-- name: publish_end
-- After the COPY, in its transaction: whether any id of the batch is remembered through
-- unique_for_s (then the batch is rolled back and goes through publish instead), and one
-- notice per queue, delivered at the commit. A batch with an id that is already pending
-- fails the COPY on the primary key and goes through publish too.
SELECT EXISTS (SELECT 1 FROM unnest(%(task_ids)s::text[]) AS b (task_id)
               JOIN {schema}.unique_ids u ON u.task_id = b.task_id
               WHERE u.remembered_until > {now}) AS remembered,
       (SELECT count(pg_notify({schema}.queue_channel(q.name), ''))
        FROM unnest(%(queue_names)s::text[]) AS q (name)) AS notified;

-- name: publish_one
-- One message with no unique_for_s (most delay() calls), without publish's batch
-- machinery: inserted unless its id is pending (the primary key) or remembered through
-- unique_for_s, and its queue notified at the commit. When nothing was inserted,
-- transport.py sends the message again through publish, which refuses or skips it as
-- it says.
-- When %(handoff)s (the message is due now and small enough to travel in a notice) and
-- a worker waits on its queue with a free slot (0006_handoff.sql), the message is
-- inserted already leased to that worker, for the waiter's short hand-off lease, and sent
-- to it whole on its channel instead of the queue's: the worker starts it without a
-- reserve of its own (handoff.py). A waiter another publish is handing to is skipped,
-- never waited for.
WITH waiter AS (
    SELECT w.worker_id, w.channel, w.lease_ms FROM {schema}.waiters w
    WHERE %(handoff)s AND w.free > 0 AND w.until > {now} AND %(queue)s = ANY (w.queues)
    LIMIT 1
    FOR UPDATE SKIP LOCKED
), inserted AS (
    INSERT INTO {schema}.messages AS m (task_id, queue, body, priority, state, available_at,
                                        delivery_count, lease_until, worker_id)
    SELECT %(task_id)s, %(queue)s, %(body)s, %(priority)s,
           CASE WHEN w.worker_id IS NULL THEN {queued} ELSE {reserved} END,
           coalesce(%(eta)s::timestamptz, {now}),
           CASE WHEN w.worker_id IS NULL THEN 0 ELSE 1 END,
           {now} + w.lease_ms * interval '1 millisecond', w.worker_id
    FROM (SELECT 1) AS one LEFT JOIN waiter w ON true
    WHERE NOT EXISTS (SELECT 1 FROM {schema}.unique_ids u
                      WHERE u.task_id = %(task_id)s AND u.remembered_until > {now})
    ON CONFLICT (task_id) DO NOTHING
    RETURNING m.task_id, m.queue, m.body, m.lease_until, m.worker_id
), taken AS (
    UPDATE {schema}.waiters w SET free = w.free - 1
    FROM inserted i WHERE w.worker_id = i.worker_id
)
SELECT count(CASE
    WHEN i.worker_id IS NULL THEN pg_notify({schema}.queue_channel(i.queue), '')
    ELSE pg_notify(w.channel, json_build_object(
        'worker', i.worker_id, 'id', i.task_id, 'queue', i.queue,
        'lease_until_ms', (extract(epoch FROM i.lease_until) * 1000)::bigint,
        'revoked', EXISTS (SELECT 1 FROM {schema}.revoked v WHERE v.task_id = i.task_id AND v.expires_at > {now}),
        'body', encode(i.body, 'base64'))::text)
    END)
FROM inserted i LEFT JOIN waiter w ON w.worker_id = i.worker_id;
