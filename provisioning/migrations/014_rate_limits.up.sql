-- Rate limits shared by every `ens serve` process: one row per key (a
-- client address or /64, a code's lookup hash prefix, an ops login). An
-- unlogged table: counters are not worth a WAL write, and a crash that
-- empties it only forgets some delays.
CREATE UNLOGGED TABLE rate_limit (
    key        text COLLATE "C" PRIMARY KEY,
    attempts   integer NOT NULL CHECK (attempts >= 0),
    not_before timestamptz,
    touched_at timestamptz NOT NULL
);
CREATE INDEX rate_limit_touched ON rate_limit (touched_at);
