-- A launch adds up to millions of accounts at once; until autovacuum gets
-- to them, the planner's statistics describe the table before it, and the
-- notice chunks' queries — a few hundred accounts by id — were planned as
-- scans of the whole account table (hash joins, parallel seq scans): on a
-- 100,000-person wave, 200 ms of every chunk. The launch refreshes the
-- statistics as it ends; only the owner may ANALYZE.
CREATE FUNCTION ens_analyze_accounts() RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp AS $$
BEGIN
    ANALYZE account;
    ANALYZE person;
END $$;
REVOKE ALL ON FUNCTION ens_analyze_accounts() FROM PUBLIC;

-- The curators' copies are looked for among each chunk's accounts; with few
-- people under curatelle the planner starts from them — by a scan of the
-- whole person table for want of an index (on a 100,000-person wave, 50 ms
-- of every chunk). This index holds only them.
CREATE INDEX person_curatelle_idx ON person (id) WHERE protection = 'curatelle';
