-- 0002_dashboard: what the dashboard reads without scanning raw events, and the control
-- channel apart from the event log.

-- The control log: remote-control requests and replies (ops.py), capped at control_max by
-- each write like the events, so that workers polling it read only control records.
CREATE TABLE {schema}.control (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    body bytea NOT NULL
);

-- Per-minute aggregates (celeriac/stats.py): one number per (minute, task name, queue,
-- metric), added to by each worker's flush. A writer adds to the rows of its own shard
-- (0-7, chosen per client), so workers flushing at once do not queue on the same rows;
-- readers sum the shards. Housekeeping deletes minutes older than KEEP_MINUTES.
CREATE TABLE {schema}.stats (
    minute integer NOT NULL,
    name text NOT NULL,
    queue text NOT NULL,
    metric text NOT NULL,
    shard smallint NOT NULL,
    value double precision NOT NULL,
    PRIMARY KEY (minute, name, queue, metric, shard)
);

-- Leases that ran out, per queue, counted by reserve (expired), and of those the ones put
-- back on the queue (reclaimed; the rest were dead-lettered). They only grow.
CREATE TABLE {schema}.lease_counters (
    queue text PRIMARY KEY,
    expired bigint NOT NULL DEFAULT 0,
    reclaimed bigint NOT NULL DEFAULT 0
);
