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

-- ens_rate_reserve counts one attempt for every key, atomically, and returns
-- zero; or, when some key must still wait, counts nothing and returns how
-- long. The first `free` attempts cost nothing, each further one doubles
-- the wait from `base` up to `max_delay`; a key untouched for `ttl` starts
-- over. Rows are locked in key order, so concurrent calls never deadlock
-- and never both slip past a delay.
CREATE FUNCTION ens_rate_reserve(keys text[], at timestamptz, free integer, base interval, max_delay interval, ttl interval)
RETURNS interval LANGUAGE plpgsql AS $$
DECLARE
    wait interval := '0';
    r rate_limit;
BEGIN
    INSERT INTO rate_limit (key, attempts, touched_at)
        SELECT k, 0, at FROM unnest(keys) k ORDER BY k ON CONFLICT DO NOTHING;
    FOR r IN SELECT * FROM rate_limit WHERE key = ANY (keys) ORDER BY key FOR UPDATE LOOP
        IF r.touched_at >= at - ttl AND r.not_before > at THEN
            wait := greatest(wait, r.not_before - at);
        END IF;
    END LOOP;
    IF wait > '0' THEN
        RETURN wait;
    END IF;
    UPDATE rate_limit l SET (attempts, not_before, touched_at) = (
        SELECT n, CASE WHEN n > free THEN at + least(base * power(2, least(n - free - 1, 30)), max_delay) END, at
        FROM (SELECT CASE WHEN l.touched_at < at - ttl THEN 1 ELSE l.attempts + 1 END AS n) c)
    WHERE key = ANY (keys);
    RETURN wait;
END $$;
