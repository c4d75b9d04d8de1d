-- 0001_initial: celeriac's tables, in a schema of their own ({schema}; the URL's
-- ?schema= option), so they never mix with the application's.
--
-- A message row is in one of two states: {queued} queued, {reserved} reserved (leased to
-- worker_id until lease_until, fenced by delivery_count). A queued row whose available_at
-- is still ahead is scheduled (its eta): it holds no lease, and it counts as queued the
-- moment it is due, with no step that moves it. Acknowledging deletes the row, so a task
-- id can be used again once its task is done, never while it is pending or running.
-- Times are in the database's clock (now()), never a worker's.

CREATE TABLE {schema}.messages (
    task_id text PRIMARY KEY,
    queue text NOT NULL,
    body bytea NOT NULL,
    priority smallint NOT NULL DEFAULT 0 CHECK (priority BETWEEN 0 AND 9),
    state smallint NOT NULL DEFAULT {queued},
    -- Queued: when it may be handed out (its eta, or when it was queued). A message
    -- released at shutdown gets -infinity: it goes ahead of everything of its priority.
    available_at timestamptz NOT NULL,
    seq bigint GENERATED ALWAYS AS IDENTITY,  -- publish order, for messages queued at the same instant
    delivery_count integer NOT NULL DEFAULT 0,  -- the fencing token of the current delivery
    -- Leases that ran out since the last retry: a task that keeps killing or freezing its
    -- worker is dead-lettered at max_deliveries. Retries and releases do not count.
    expired_count integer NOT NULL DEFAULT 0,
    lease_until timestamptz,
    worker_id text
) WITH (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
-- A queue table churns: every message is inserted, updated at least once and deleted,
-- so dead rows are cleaned after 2% of the table changed rather than 20%.

-- Reserving walks this index: per queue, priority 9 first, then the oldest due.
CREATE INDEX messages_ready ON {schema}.messages (queue, priority DESC, available_at, seq)
    WHERE state = {queued};
-- Leases that ran out are found, and the next deadline read, through this one.
CREATE INDEX messages_leases ON {schema}.messages (lease_until) WHERE state = {reserved};

-- Ids published with unique_for_s: refused again until remembered_until.
CREATE TABLE {schema}.unique_ids (
    task_id text PRIMARY KEY,
    remembered_until timestamptz NOT NULL
);
CREATE INDEX unique_ids_expiry ON {schema}.unique_ids (remembered_until);

-- Token buckets for rate_limit, shared by every worker on this database. A bucket that
-- would be full again (full_at) is the same as none, and housekeeping deletes it.
CREATE TABLE {schema}.rate_buckets (
    key text PRIMARY KEY,
    tokens double precision NOT NULL,
    updated_at timestamptz NOT NULL,
    full_at timestamptz NOT NULL,
    took boolean NOT NULL  -- whether the last call took a token (what the upsert returns)
);
CREATE INDEX rate_buckets_full ON {schema}.rate_buckets (full_at);

-- The capped event log: ids only grow; rows older than the newest events_max are deleted
-- by each write.
CREATE TABLE {schema}.events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    body bytea NOT NULL
);

-- One row per message dead-lettered: a task id sent again and dead-lettered again keeps
-- both; the higher id is the newer (the one a requeue of that task id takes).
CREATE TABLE {schema}.dead_letters (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id text NOT NULL,
    queue text NOT NULL,
    body bytea NOT NULL,
    reason text NOT NULL,
    failed_at timestamptz NOT NULL,
    delivery_count integer NOT NULL DEFAULT 0,
    priority smallint NOT NULL DEFAULT 0
);
CREATE INDEX dead_letters_task ON {schema}.dead_letters (task_id, id);

CREATE TABLE {schema}.revoked (
    task_id text PRIMARY KEY,
    expires_at timestamptz NOT NULL,
    terminate boolean NOT NULL DEFAULT false
);
CREATE INDEX revoked_expiry ON {schema}.revoked (expires_at);

-- One row per task id: the msgspec JSON of celeriac.message.ResultRecord, and the token
-- of the delivery that wrote it (a lower one is refused).
CREATE TABLE {schema}.results (
    task_id text PRIMARY KEY,
    is_ready boolean NOT NULL,
    fencing_token integer NOT NULL,
    record bytea NOT NULL,
    expires_at timestamptz
);
CREATE INDEX results_expiry ON {schema}.results (expires_at) WHERE expires_at IS NOT NULL;

-- One row per finished member: the primary key makes recording a member idempotent, and
-- group_counts, updated under its row lock, makes exactly one recording see the count
-- reach the total. Both expire with the members' results.
CREATE TABLE {schema}.group_members (
    group_id text NOT NULL,
    member_id text NOT NULL,
    expires_at timestamptz,
    PRIMARY KEY (group_id, member_id)
);
CREATE INDEX group_members_expiry ON {schema}.group_members (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE {schema}.group_counts (
    group_id text PRIMARY KEY,
    done integer NOT NULL,
    expires_at timestamptz
);
CREATE INDEX group_counts_expiry ON {schema}.group_counts (expires_at) WHERE expires_at IS NOT NULL;

-- Saved groups (GroupResult.save()).
CREATE TABLE {schema}.groups (
    group_id text PRIMARY KEY,
    member_ids text[] NOT NULL,
    expires_at timestamptz
);
CREATE INDEX groups_expiry ON {schema}.groups (expires_at) WHERE expires_at IS NOT NULL;

-- The NOTIFY channel of a queue: a name fits in 63 bytes whatever the queue's name is.
-- Publishers and listeners both ask this function, so they always agree on it.
CREATE FUNCTION {schema}.queue_channel(queue text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT 'celeriac_' || md5('{schema}/' || queue) $$;

-- Raised from inside the publish statement, so that the whole batch is rolled back in the
-- same round trip (transport.py reads the detail and the hint back).
CREATE FUNCTION {schema}.refuse_duplicate(task_id text, remembered boolean) RETURNS boolean
    LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING
        MESSAGE = 'celeriac: duplicate task id',
        DETAIL = task_id,
        HINT = CASE WHEN remembered THEN 'remembered' ELSE 'pending' END;
END
$$;
