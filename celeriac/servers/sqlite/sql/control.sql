-- What workers share beside the messages (transport.py): revoked ids, rate-limit
-- buckets, the capped event log.

-- name: forget-expired-revoked-ids
DELETE FROM celeriac_revoked WHERE expires_at_ms < ?;

-- name: revoke
-- Parameters: task id, remembered until, terminate.
INSERT OR REPLACE INTO celeriac_revoked VALUES (?, ?, ?);

-- name: revoked-among
-- Of these ids, the revoked ones, with their terminate flag.
SELECT task_id, terminate FROM celeriac_revoked WHERE task_id IN ({marks}) AND expires_at_ms > ?;

-- name: rate-bucket
SELECT tokens, updated_at_ms FROM celeriac_rate_buckets WHERE key = ?;

-- name: save-rate-bucket
-- Parameters: key, tokens left, when.
INSERT OR REPLACE INTO celeriac_rate_buckets VALUES (?, ?, ?);

-- name: append-event
INSERT INTO celeriac_events (body) VALUES (?);

-- name: last-event-id
SELECT max(id) FROM celeriac_events;

-- name: drop-events-up-to
-- Caps the log: everything up to the id given (the last id less events_max) goes.
DELETE FROM celeriac_events WHERE id <= ?;

-- name: newest-events
-- The newest events (as many as asked for), oldest first.
SELECT id, body FROM (SELECT id, body FROM celeriac_events ORDER BY id DESC LIMIT ?) ORDER BY id;

-- name: events-after
-- Parameters: the last id seen, how many.
SELECT id, body FROM celeriac_events WHERE id > ? ORDER BY id LIMIT ?;
