-- The result store's statements (results.py runs them by name). A record is written with
-- the fence {result_fence}: a lower token loses, and with the same token a finished
-- state is never replaced by an unfinished one (a late STARTED must not hide a SUCCESS).
-- Ready records are announced on the results channel, which wait_ready listens to.
-- Rows live until expires_at; reads skip expired rows until housekeeping deletes them.

-- name: store
WITH written AS (
    INSERT INTO {schema}.results AS r (task_id, is_ready, fencing_token, record, expires_at)
    SELECT i.task_id, i.is_ready, i.fencing_token, i.record,
           {now} + %(expires_ms)s::bigint * interval '1 millisecond'
    FROM unnest(%(result_ids)s::text[], %(result_ready)s::boolean[], %(result_tokens)s::bigint[],
                %(records)s::bytea[]) AS i (task_id, is_ready, fencing_token, record)
    ON CONFLICT (task_id) DO UPDATE SET is_ready = excluded.is_ready, fencing_token = excluded.fencing_token,
        record = excluded.record, expires_at = excluded.expires_at
    WHERE {result_fence}
    RETURNING r.task_id, r.is_ready
), notices AS (
    SELECT pg_notify('{results_channel}', w.task_id) FROM written w
    WHERE w.is_ready AND octet_length(w.task_id) < {max_payload}
)
SELECT array(SELECT i.task_id FROM unnest(%(result_ids)s::text[]) AS i (task_id)
             WHERE i.task_id NOT IN (SELECT w.task_id FROM written w)) AS refused,
       (SELECT count(*) FROM notices) AS notified;

-- name: fetch
SELECT r.record FROM {schema}.results r
WHERE r.task_id = ANY (%(task_ids)s::text[]) AND (r.expires_at IS NULL OR r.expires_at > {now});

-- name: forget
DELETE FROM {schema}.results WHERE task_id = %(task_id)s;

-- name: record_group_member
-- Store a member's record and count the member, once. The member's row (primary key)
-- makes a second recording add nothing; the group's count row is updated under its row
-- lock, after any concurrent recording committed, so exactly one call sees the count
-- cross the total: the one that enqueues the chord body. Both rows expire with the
-- member's result.
WITH written AS (
    INSERT INTO {schema}.results AS r (task_id, is_ready, fencing_token, record, expires_at)
    VALUES (%(task_id)s, %(is_ready)s, %(token)s, %(record)s,
            {now} + %(expires_ms)s::bigint * interval '1 millisecond')
    ON CONFLICT (task_id) DO UPDATE SET is_ready = excluded.is_ready, fencing_token = excluded.fencing_token,
        record = excluded.record, expires_at = excluded.expires_at
    WHERE {result_fence}
    RETURNING r.task_id, r.is_ready
), notices AS (
    SELECT pg_notify('{results_channel}', w.task_id) FROM written w
    WHERE w.is_ready AND octet_length(w.task_id) < {max_payload}
), added AS (
    INSERT INTO {schema}.group_members (group_id, member_id, expires_at)
    VALUES (%(group_id)s, %(member_id)s, {now} + %(expires_ms)s::bigint * interval '1 millisecond')
    ON CONFLICT (group_id, member_id) DO NOTHING
    RETURNING member_id
), counted AS (
    INSERT INTO {schema}.group_counts AS c (group_id, done, expires_at)
    VALUES (%(group_id)s, (SELECT count(*) FROM added), {now} + %(expires_ms)s::bigint * interval '1 millisecond')
    ON CONFLICT (group_id) DO UPDATE SET done = c.done + excluded.done, expires_at = excluded.expires_at
    RETURNING c.done
)
SELECT c.done, (SELECT count(*) FROM added) AS added, (SELECT count(*) FROM notices) AS notified
FROM counted c;

-- name: save_group
INSERT INTO {schema}.groups AS g (group_id, member_ids, expires_at)
VALUES (%(group_id)s, %(member_ids)s::text[], {now} + %(expires_ms)s::bigint * interval '1 millisecond')
ON CONFLICT (group_id) DO UPDATE SET member_ids = excluded.member_ids, expires_at = excluded.expires_at;

-- name: restore_group
SELECT g.member_ids FROM {schema}.groups g
WHERE g.group_id = %(group_id)s AND (g.expires_at IS NULL OR g.expires_at > {now});
