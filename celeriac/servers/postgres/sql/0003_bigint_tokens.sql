-- 0003_bigint_tokens: a result's fencing token as a 64-bit number. Beat keeps each entry's
-- last fire and its on/off switch as records whose token is a time in epoch milliseconds
-- (beat/state.py), which does not fit in an integer.
ALTER TABLE {schema}.results ALTER COLUMN fencing_token TYPE bigint;
