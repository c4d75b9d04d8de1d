-- 0005_lease_index: the index of leases covers the rows that have a lease deadline, not
-- the rows in the reserved state. They are the same rows (reserve sets lease_until, and
-- every way back to the queue clears it), but statements that name one leased message
-- by its id (ack, renew, release, retry, dead_letter) also say state = reserved, and with
-- the old predicate the planner could use this index for them. When its statistics
-- counted few leases, it did: it read every lease and matched each against the batch, so
-- an ack of 1,600 messages took 750 ms. Now only the primary key fits those statements.
-- Rebuilding reads the table once; the migration lock keeps other workers waiting meanwhile.
DROP INDEX {schema}.messages_leases;
CREATE INDEX messages_leases ON {schema}.messages (lease_until) WHERE lease_until IS NOT NULL;
