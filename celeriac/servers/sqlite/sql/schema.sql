-- celeriac's tables in its own SQLite file (never the application's database).
-- Applied at every connect; every statement is idempotent. Tables made by an earlier
-- build are brought up to date first (database.py, _upgrade_tables). Rows that expire
-- (results, group members, saved groups, unique and revoked ids) are deleted by the
-- housekeeping pass, in batches, through the expiry indexes below.
--
-- A message row is in one state: 0 queued, 1 reserved (leased to worker_id until
-- lease_expires_at_ms, fenced by delivery_count), 2 scheduled (waits for
-- available_at_ms; holds no lease). Acknowledging deletes the row, so a task id can be
-- reused once its task is done, never while it is pending or running.

CREATE TABLE IF NOT EXISTS celeriac_messages (
    task_id TEXT PRIMARY KEY,
    queue TEXT NOT NULL,
    body BLOB NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    available_at_ms INTEGER NOT NULL,
    state INTEGER NOT NULL,  -- 0 queued, 1 reserved, 2 scheduled (QUEUED, RESERVED, SCHEDULED in transport.py)
    delivery_count INTEGER NOT NULL DEFAULT 0,
    -- Leases that ran out since the last retry: a task that keeps killing or freezing its
    -- worker is dead-lettered at max_deliveries. Retries and releases do not count.
    expired_count INTEGER NOT NULL DEFAULT 0,
    lease_expires_at_ms INTEGER,
    worker_id TEXT
);
CREATE INDEX IF NOT EXISTS celeriac_messages_ready
    ON celeriac_messages (queue, priority DESC, available_at_ms) WHERE state = 0;
CREATE INDEX IF NOT EXISTS celeriac_messages_leases
    ON celeriac_messages (lease_expires_at_ms) WHERE state = 1;
CREATE INDEX IF NOT EXISTS celeriac_messages_schedule
    ON celeriac_messages (available_at_ms) WHERE state = 2;

-- Ids published with unique_for_s: refused again until remembered_until_ms.
CREATE TABLE IF NOT EXISTS celeriac_unique_ids (
    task_id TEXT PRIMARY KEY,
    remembered_until_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS celeriac_unique_ids_expiry ON celeriac_unique_ids (remembered_until_ms);

-- Token buckets for rate_limit, shared by every worker on this file.
CREATE TABLE IF NOT EXISTS celeriac_rate_buckets (
    key TEXT PRIMARY KEY,
    tokens REAL NOT NULL,
    updated_at_ms INTEGER NOT NULL
) WITHOUT ROWID;

-- The capped event log: ids only grow; old rows are deleted past events_max.
CREATE TABLE IF NOT EXISTS celeriac_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    body BLOB NOT NULL
);

-- The control log (remote-control requests and replies), apart from the events so that
-- workers polling it read only control records; capped at control_max like the events.
CREATE TABLE IF NOT EXISTS celeriac_control (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    body BLOB NOT NULL
);

-- Per-minute aggregates (celeriac/stats.py): one number per (minute, task name, queue,
-- metric), added to by every worker's flush; minutes older than KEEP_MINUTES are deleted
-- by housekeeping (sql/stats.sql).
CREATE TABLE IF NOT EXISTS celeriac_stats (
    minute INTEGER NOT NULL,
    name TEXT NOT NULL,
    queue TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (minute, name, queue, metric)
) WITHOUT ROWID;

-- Leases that ran out, per queue, counted by reserve (expired), and of those the ones put
-- back on the queue (reclaimed; the rest were dead-lettered). They only grow.
CREATE TABLE IF NOT EXISTS celeriac_lease_counters (
    queue TEXT PRIMARY KEY,
    expired INTEGER NOT NULL DEFAULT 0,
    reclaimed INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- One row per message dead-lettered: a task id sent again and dead-lettered again keeps
-- both; the higher id is the newer (the one a requeue of that task id takes).
CREATE TABLE IF NOT EXISTS celeriac_dead_letters (
    id INTEGER PRIMARY KEY,
    task_id TEXT NOT NULL,
    queue TEXT NOT NULL,
    body BLOB NOT NULL,
    reason TEXT NOT NULL,
    failed_at_ms INTEGER NOT NULL,
    delivery_count INTEGER NOT NULL DEFAULT 0,
    priority INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS celeriac_dead_letters_task ON celeriac_dead_letters (task_id);

CREATE TABLE IF NOT EXISTS celeriac_revoked (
    task_id TEXT PRIMARY KEY,
    expires_at_ms INTEGER NOT NULL,
    terminate INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS celeriac_revoked_expiry ON celeriac_revoked (expires_at_ms);

CREATE TABLE IF NOT EXISTS celeriac_results (
    task_id TEXT PRIMARY KEY,
    is_ready INTEGER NOT NULL,
    fencing_token INTEGER NOT NULL,
    record BLOB NOT NULL,
    expires_at_ms INTEGER
);
CREATE INDEX IF NOT EXISTS celeriac_results_expiry
    ON celeriac_results (expires_at_ms) WHERE expires_at_ms IS NOT NULL;

-- One row per finished member: the primary key makes recording a member idempotent.
-- A row expires with its member's result (a chord body needs that result anyway).
CREATE TABLE IF NOT EXISTS celeriac_group_members (
    group_id TEXT NOT NULL,
    member_id TEXT NOT NULL,
    expires_at_ms INTEGER,
    PRIMARY KEY (group_id, member_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS celeriac_group_members_expiry
    ON celeriac_group_members (expires_at_ms) WHERE expires_at_ms IS NOT NULL;

CREATE TABLE IF NOT EXISTS celeriac_groups (
    group_id TEXT PRIMARY KEY,
    member_ids TEXT NOT NULL,
    expires_at_ms INTEGER
);
CREATE INDEX IF NOT EXISTS celeriac_groups_expiry
    ON celeriac_groups (expires_at_ms) WHERE expires_at_ms IS NOT NULL;
