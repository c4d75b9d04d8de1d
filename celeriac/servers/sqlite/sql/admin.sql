-- The queue admin behind ops.py (transport.py): dead letters, requeue, purge, depths.

-- name: list-dead-letters
-- The oldest first (the ids only grow).
SELECT task_id, queue, body, reason, failed_at_ms, delivery_count, priority
FROM celeriac_dead_letters ORDER BY id LIMIT ?;

-- name: newest-dead-letter-of-every-id
-- Each task id with a dead letter, with its newest one, in the order they first failed.
SELECT task_id, max(id) FROM celeriac_dead_letters GROUP BY task_id ORDER BY min(id);

-- name: newest-dead-letter-of-ids
SELECT task_id, max(id) FROM celeriac_dead_letters WHERE task_id IN ({marks}) GROUP BY task_id;

-- name: message-exists
-- Whether the id is scheduled, queued or reserved.
SELECT 1 FROM celeriac_messages WHERE task_id = ?;

-- name: take-dead-letter
DELETE FROM celeriac_dead_letters WHERE id = ? RETURNING queue, body, delivery_count, priority;

-- name: requeue
-- Back on its queue, keeping its priority and delivery count (tokens go on rising).
-- Parameters: task id, queue, body, priority, now, delivery count.
INSERT INTO celeriac_messages (task_id, queue, body, priority, available_at_ms, state, delivery_count)
VALUES (?, ?, ?, ?, ?, {QUEUED}, ?);

-- name: purge-dead-letters
DELETE FROM celeriac_dead_letters;

-- name: purge-queue
DELETE FROM celeriac_messages WHERE queue = ? AND state IN ({QUEUED}, {SCHEDULED});

-- name: queue-depths
SELECT queue, count(*) FROM celeriac_messages WHERE state IN ({QUEUED}, {SCHEDULED}) GROUP BY queue;
