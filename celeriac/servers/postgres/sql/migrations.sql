-- The statements around the numbered migrations (migrations.py): the version table and
-- the lock that makes processes starting together apply each migration once.

-- name: applied
-- Fails (undefined schema or table) on a database celeriac never used.
SELECT coalesce(max(version), 0) FROM {schema}.migrations;

-- name: schema_exists
SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %(schema)s);

-- name: create_schema
CREATE SCHEMA IF NOT EXISTS {schema};

-- name: create_version_table
CREATE TABLE IF NOT EXISTS {schema}.migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- name: versions
SELECT version FROM {schema}.migrations;

-- name: record_version
INSERT INTO {schema}.migrations (version, name) VALUES (%(version)s, %(name)s);

-- name: lock
-- A session lock, held while migrating: a second process waits here, then finds the
-- migrations applied.
SELECT pg_advisory_lock(%(key)s);

-- name: unlock
SELECT pg_advisory_unlock(%(key)s);
