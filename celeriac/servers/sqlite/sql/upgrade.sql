-- Bringing a file made by an earlier development build up to the current schema
-- (database.py: _upgrade_tables runs before schema.sql, _move_old_dead_letters after).

-- name: table-columns
-- A table's columns, each with its place in the primary key (0: not in it); no rows if
-- there is no such table.
SELECT name, pk FROM pragma_table_info(?);

-- name: add-messages-expired-count
ALTER TABLE celeriac_messages ADD COLUMN expired_count INTEGER NOT NULL DEFAULT 0;

-- name: add-dead-letters-delivery-count
ALTER TABLE celeriac_dead_letters ADD COLUMN delivery_count INTEGER NOT NULL DEFAULT 0;

-- name: add-dead-letters-priority
ALTER TABLE celeriac_dead_letters ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;

-- name: add-group-members-expires-at
ALTER TABLE celeriac_group_members ADD COLUMN expires_at_ms INTEGER;

-- name: expire-group-members-with-their-results
-- Earlier builds kept members forever: each now goes with its result...
UPDATE celeriac_group_members SET expires_at_ms = (SELECT r.expires_at_ms
    FROM celeriac_results r WHERE r.task_id = member_id);

-- name: drop-group-members-without-results
-- ...and those whose result is gone already go now.
DELETE FROM celeriac_group_members WHERE member_id NOT IN (SELECT task_id FROM celeriac_results);

-- name: rename-old-dead-letters
-- The earlier table kept one row per task id (a second dead letter replaced the first).
-- schema.sql then creates the new table; move-old-dead-letters moves the rows over.
ALTER TABLE celeriac_dead_letters RENAME TO {OLD_DEAD_LETTERS};

-- name: move-old-dead-letters
INSERT INTO celeriac_dead_letters (task_id, queue, body, reason, failed_at_ms, delivery_count, priority)
SELECT task_id, queue, body, reason, failed_at_ms, delivery_count, priority
FROM {OLD_DEAD_LETTERS} ORDER BY failed_at_ms;

-- name: drop-old-dead-letters
DROP TABLE {OLD_DEAD_LETTERS};
