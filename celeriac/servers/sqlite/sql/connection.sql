-- The connection's settings and its transactions (database.py). A PRAGMA takes no
-- parameters, so its values are written in when the file is read (statements.py);
-- {synchronous} is the database's own setting, filled when it connects.

-- name: journal-mode
-- WAL: readers in other processes go on while one process writes.
PRAGMA journal_mode=WAL;

-- name: journal-size-limit
-- Whenever a checkpoint completes, the WAL is cut back to this size.
PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT};

-- name: synchronous
PRAGMA synchronous={synchronous};

-- name: busy-timeout
-- How long a statement waits for another process's write lock.
PRAGMA busy_timeout={BUSY_TIMEOUT_MS};

-- name: data-version
-- A counter that changes whenever another connection commits, read without a lock: an
-- idle reserve polls it instead of the tables.
PRAGMA data_version;

-- name: begin-immediate
-- The write lock is taken up front, so a transaction never upgrades from a read lock
-- (and deadlocks with another process doing the same).
BEGIN IMMEDIATE;

-- name: commit
COMMIT;

-- name: rollback
ROLLBACK;
