-- The housekeeping pass (database.py): expired rows deleted in short batches, each its
-- own transaction, then the WAL truncated. Every purge takes: now, the batch size.

-- name: purge-expired-results
DELETE FROM celeriac_results WHERE (rowid) IN
    (SELECT rowid FROM celeriac_results WHERE expires_at_ms < ? LIMIT ?);

-- name: purge-expired-group-members
DELETE FROM celeriac_group_members WHERE (group_id, member_id) IN
    (SELECT group_id, member_id FROM celeriac_group_members WHERE expires_at_ms < ? LIMIT ?);

-- name: purge-expired-groups
DELETE FROM celeriac_groups WHERE (rowid) IN
    (SELECT rowid FROM celeriac_groups WHERE expires_at_ms < ? LIMIT ?);

-- name: purge-expired-unique-ids
DELETE FROM celeriac_unique_ids WHERE (task_id) IN
    (SELECT task_id FROM celeriac_unique_ids WHERE remembered_until_ms <= ? LIMIT ?);

-- name: purge-expired-revoked-ids
DELETE FROM celeriac_revoked WHERE (task_id) IN
    (SELECT task_id FROM celeriac_revoked WHERE expires_at_ms < ? LIMIT ?);

-- name: checkpoint-busy-timeout
-- While checkpointing, give up this soon when other processes hold the WAL (busy-timeout
-- is set back afterwards).
PRAGMA busy_timeout={CHECKPOINT_BUSY_MS};

-- name: truncate-wal
-- Its first column is 1 when the checkpoint could not finish (readers were busy).
PRAGMA wal_checkpoint(TRUNCATE);
