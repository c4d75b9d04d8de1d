-- 0004_event_batches: the event log keeps one row per write (a worker's flush holds the
-- events of hundreds of tasks), not one per event. Three rows per task, each inserted and
-- later deleted by the cap, were a third of the server's time for a no-op task. Each
-- event still has its own place: the rows take a run of event_seq per event, and a row's
-- key is the last number of its run, so the cap counts events, not rows. The old log is
-- dropped, not converted: it holds only recent events, which the workers write again.
DROP TABLE {schema}.events;
CREATE SEQUENCE {schema}.event_seq AS bigint;
CREATE TABLE {schema}.events (
    last_seq bigint PRIMARY KEY,
    bodies bytea[] NOT NULL
);
-- A log that turns over in minutes: compressing each write costs more than the space saved.
ALTER TABLE {schema}.events ALTER COLUMN bodies SET STORAGE EXTERNAL;
