-- A message's life in celeriac_messages (transport.py): publish, reserve (with the
-- reclaim of run-out leases), renew, ack, release, retry, dead-letter.
--
-- The states are written in as literals ({QUEUED}, {RESERVED}, {SCHEDULED}: 0, 1, 2),
-- never sent as parameters: SQLite uses a partial index (schema.sql) only when the
-- query's WHERE names the same constant. Every statement on a reserved message is fenced:
-- it names the task id, the delivery count it was handed out with, and state {RESERVED},
-- so a worker whose lease was taken over changes nothing.

-- name: remembered-unique-ids
-- Of these ids, those published with unique_for_s that are still remembered.
SELECT task_id FROM celeriac_unique_ids WHERE task_id IN ({marks}) AND remembered_until_ms > ?;

-- name: pending-or-remembered-ids
-- Of these ids, those scheduled, queued or reserved, or still remembered as unique.
SELECT task_id FROM celeriac_messages WHERE task_id IN ({marks})
UNION SELECT task_id FROM celeriac_unique_ids WHERE task_id IN ({marks}) AND remembered_until_ms > ?;

-- name: remember-unique-id
-- Parameters: task id, remembered until, now. An expired row (not yet deleted by
-- housekeeping) is overwritten; a live one is left alone.
INSERT INTO celeriac_unique_ids VALUES (?, ?) ON CONFLICT (task_id) DO UPDATE
SET remembered_until_ms = excluded.remembered_until_ms
WHERE celeriac_unique_ids.remembered_until_ms <= ?;

-- name: publish
-- The state is {QUEUED} or {SCHEDULED}, by the eta.
INSERT OR IGNORE INTO celeriac_messages (task_id, queue, body, priority, available_at_ms, state)
VALUES (?, ?, ?, ?, ?, ?);

-- name: has-work
-- A read-only look before reserving: an idle worker must not take the write lock every
-- poll. Parameters: the queues, then now twice.
SELECT EXISTS (SELECT 1 FROM celeriac_messages WHERE state = {QUEUED} AND queue IN ({marks}))
OR EXISTS (SELECT 1 FROM celeriac_messages WHERE state = {SCHEDULED} AND available_at_ms <= ?)
OR EXISTS (SELECT 1 FROM celeriac_messages WHERE state = {RESERVED} AND lease_expires_at_ms <= ?);

-- name: next-event
-- When the next scheduled message falls due or the next lease runs out (NULL: never).
SELECT min(t) FROM (SELECT min(available_at_ms) AS t FROM celeriac_messages WHERE state = {SCHEDULED}
UNION ALL SELECT min(lease_expires_at_ms) FROM celeriac_messages WHERE state = {RESERVED});

-- name: queue-due-messages
UPDATE celeriac_messages SET state = {QUEUED} WHERE state = {SCHEDULED} AND available_at_ms <= ?;

-- name: reserve
-- Lease the best queued messages of the queues asked for: priority 9 first, then the
-- oldest. The delivery count, one higher, is the new holder's fencing token.
-- Parameters: lease deadline, worker id, the queues, how many. RETURNING has no defined
-- order: the caller sorts.
UPDATE celeriac_messages SET state = {RESERVED}, delivery_count = delivery_count + 1,
    lease_expires_at_ms = ?, worker_id = ?
WHERE task_id IN (SELECT task_id FROM celeriac_messages
    WHERE state = {QUEUED} AND queue IN ({marks})
    ORDER BY priority DESC, available_at_ms, rowid LIMIT ?)
RETURNING task_id, queue, body, delivery_count, priority, available_at_ms;

-- name: count-run-out-leases
-- Reclaiming, step 1: every lease that ran out counts once more toward max_deliveries.
UPDATE celeriac_messages SET expired_count = expired_count + 1
WHERE state = {RESERVED} AND lease_expires_at_ms <= ?;

-- name: take-past-max-deliveries
-- Reclaiming, step 2: take out those whose leases ran out max_deliveries times (they are
-- dead-lettered). Parameters: now, max_deliveries.
DELETE FROM celeriac_messages WHERE state = {RESERVED} AND lease_expires_at_ms <= ?
    AND expired_count >= ?
RETURNING task_id, queue, body, expired_count, delivery_count, priority;

-- name: reclaim-expired
-- Reclaiming, step 3: the others go back to their queue, behind what is there.
-- Parameters: now (the new place in the queue), now.
UPDATE celeriac_messages SET state = {QUEUED}, worker_id = NULL, lease_expires_at_ms = NULL,
    available_at_ms = ?
WHERE state = {RESERVED} AND lease_expires_at_ms <= ?;

-- name: insert-dead-letter
INSERT INTO celeriac_dead_letters (task_id, queue, body, reason, failed_at_ms, delivery_count, priority)
VALUES (?, ?, ?, ?, ?, ?, ?);

-- name: renew
-- Parameters: the new deadline, task id, token.
UPDATE celeriac_messages SET lease_expires_at_ms = ?
WHERE task_id = ? AND delivery_count = ? AND state = {RESERVED};

-- name: ack
-- Acknowledging deletes the row: the id may be used again.
DELETE FROM celeriac_messages WHERE task_id = ? AND delivery_count = ? AND state = {RESERVED};

-- name: release
-- available_at 0 puts a released message ahead of everything of its priority.
UPDATE celeriac_messages SET state = {QUEUED}, worker_id = NULL, lease_expires_at_ms = NULL,
    available_at_ms = 0
WHERE task_id = ? AND delivery_count = ? AND state = {RESERVED};

-- name: retry
-- The next attempt replaces the message, same id: parameters state ({QUEUED} or
-- {SCHEDULED}, by the eta), body, eta, task id, token. Its run-out leases count from zero.
UPDATE celeriac_messages SET state = ?, body = ?, available_at_ms = ?, worker_id = NULL,
    lease_expires_at_ms = NULL, expired_count = 0
WHERE task_id = ? AND delivery_count = ? AND state = {RESERVED};

-- name: dead-letter
-- Take a reserved message out, for insert-dead-letter.
DELETE FROM celeriac_messages WHERE task_id = ? AND delivery_count = ? AND state = {RESERVED}
RETURNING queue, body, priority;
