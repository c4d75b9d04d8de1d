-- 0006_handoff: idle workers, so that a publish can hand its message to one of them.
-- A worker whose reserve found nothing says here, before it waits, which queues it
-- waits on, how many tasks it could start (free), on which notification channel it
-- listens and until when the offer holds. publish_one takes one free slot of a waiter of
-- its queue, inserts the message already leased to that worker and sends it the message
-- on its channel (transport.py and handoff.py say why, and what happens when it is lost).
-- UNLOGGED: these rows change on every idle wake-up and mean nothing after a crash, so
-- they cost no WAL and no disk wait; a crash empties the table and workers offer again.
CREATE UNLOGGED TABLE {schema}.waiters (
    worker_id text PRIMARY KEY,
    channel text NOT NULL,
    queues text[] NOT NULL,
    free integer NOT NULL,
    lease_ms bigint NOT NULL,  -- the lease a handed message gets until the worker confirms it
    until timestamptz NOT NULL
) WITH (fillfactor = 50);  -- room for HOT updates: every offer and every taken slot rewrites a row
