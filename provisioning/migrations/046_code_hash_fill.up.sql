-- The codes' hash index split a bucket once its pages were three quarters
-- full on average (a hash index's default fill), keeping room for entries
-- that never come: a code's hash is written once, when its account is
-- notified. It now splits them full: 48 → 30 bytes a notified account at
-- 100,000 people, 34 → 32 at 5,000,000, where the buckets' doubling leaves
-- less room either way. A bucket whose codes outnumber its page chains an
-- overflow page, read by the lookups of that bucket only. The index is
-- rebuilt, which reads the accounts once.
DROP INDEX account_code_hash_idx;
CREATE INDEX account_code_hash_idx ON account USING hash (code_hash) WITH (fillfactor = 100) WHERE code_hash IS NOT NULL;
