-- Housekeeping (housekeeping.py): rows that expired are deleted in short batches, each its
-- own statement, so no lock is held for long and the workers' own statements run in
-- between. SKIP LOCKED lets several workers clean at once without waiting on each other.
-- Each block deletes at most %(batch)s rows and returns how many.

-- name: expired_results
DELETE FROM {schema}.results WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM {schema}.results
    WHERE expires_at IS NOT NULL AND expires_at < {now} LIMIT %(batch)s FOR UPDATE SKIP LOCKED));

-- name: expired_group_members
DELETE FROM {schema}.group_members WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM {schema}.group_members
    WHERE expires_at IS NOT NULL AND expires_at < {now} LIMIT %(batch)s FOR UPDATE SKIP LOCKED));

-- name: expired_group_counts
DELETE FROM {schema}.group_counts WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM {schema}.group_counts
    WHERE expires_at IS NOT NULL AND expires_at < {now} LIMIT %(batch)s FOR UPDATE SKIP LOCKED));

-- name: expired_groups
DELETE FROM {schema}.groups WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM {schema}.groups
    WHERE expires_at IS NOT NULL AND expires_at < {now} LIMIT %(batch)s FOR UPDATE SKIP LOCKED));

-- name: expired_unique_ids
DELETE FROM {schema}.unique_ids WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM {schema}.unique_ids
    WHERE remembered_until <= {now} LIMIT %(batch)s FOR UPDATE SKIP LOCKED));

-- name: expired_revoked
DELETE FROM {schema}.revoked WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM {schema}.revoked
    WHERE expires_at < {now} LIMIT %(batch)s FOR UPDATE SKIP LOCKED));

-- name: full_rate_buckets
-- A bucket that has refilled is the same as no bucket: the next take starts it full.
DELETE FROM {schema}.rate_buckets WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM {schema}.rate_buckets
    WHERE full_at < {now} LIMIT %(batch)s FOR UPDATE SKIP LOCKED));

-- name: expired_offers
-- Offers to be handed messages (0006_handoff.sql) that ran out, of workers that stopped
-- without withdrawing them (killed).
DELETE FROM {schema}.waiters WHERE until < {now} - interval '1 minute';
