-- 65 million codes of 55 bits collide somewhere (about a 6% chance of at
-- least one pair): a collision must never block a notice. Lookups use the
-- code's hash and the holder's birth date together, and refuse to answer
-- when even that pair is shared (the person is asked to call).
ALTER TABLE account DROP CONSTRAINT account_code_hash_key;
CREATE INDEX account_code_hash_idx ON account (code_hash) WHERE code_hash IS NOT NULL;
