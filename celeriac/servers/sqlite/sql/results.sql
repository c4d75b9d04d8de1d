-- The result store (results.py, and database.py's write_records, which the broker's
-- ack calls in its own transaction).

-- name: write-result
-- A fenced upsert. Parameters: task id, is ready, token, record, expires at.
-- A stale token loses; with the same token a finished state is never replaced by an
-- unfinished one (a late STARTED must not hide a SUCCESS).
INSERT INTO celeriac_results (task_id, is_ready, fencing_token, record, expires_at_ms)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (task_id) DO UPDATE SET is_ready = excluded.is_ready,
    fencing_token = excluded.fencing_token, record = excluded.record,
    expires_at_ms = excluded.expires_at_ms
WHERE excluded.fencing_token > celeriac_results.fencing_token
    OR (excluded.fencing_token = celeriac_results.fencing_token
        AND (excluded.is_ready OR NOT celeriac_results.is_ready));

-- name: fetch-results
-- Expired results are skipped until housekeeping deletes them. Parameters: the ids, now.
SELECT record FROM celeriac_results WHERE task_id IN ({marks})
    AND (expires_at_ms IS NULL OR expires_at_ms > ?);

-- name: forget-result
DELETE FROM celeriac_results WHERE task_id = ?;

-- name: add-group-member
-- Idempotent: a member recorded twice is one row. Parameters: group id, member id,
-- expires at (its result's).
INSERT INTO celeriac_group_members (group_id, member_id, expires_at_ms) VALUES (?, ?, ?)
ON CONFLICT (group_id, member_id) DO UPDATE SET expires_at_ms = excluded.expires_at_ms;

-- name: count-group-members
SELECT count(*) FROM celeriac_group_members WHERE group_id = ?;

-- name: save-group
-- Parameters: group id, member ids (JSON), expires at.
INSERT OR REPLACE INTO celeriac_groups VALUES (?, ?, ?);

-- name: restore-group
SELECT member_ids FROM celeriac_groups WHERE group_id = ?;
