-- What a person costs the database, measured on a 5,000,000-person wave
-- (make bench-scale), made smaller where an index stored more than its
-- queries read.

-- Pending follow-up emails were indexed by a predicate on the notice's
-- status, so every notice whose status changed — each accepted email, each
-- letter posted — was no longer updated in place (HOT, see migration 005):
-- a new row version, with a new entry in the primary key and in the unique
-- key. The index now reads a column of its own, computed from the status,
-- which stays NULL on every first notice: their updates are in place again.
ALTER TABLE notice ADD COLUMN followup_pending boolean GENERATED ALWAYS AS (
    CASE WHEN status = 'pending' AND channel = 'email' AND kind IN ('extension', 'resend', 'copy', 'change') THEN true END) STORED;
DROP INDEX notice_pending_followup_idx;
CREATE INDEX notice_pending_followup_idx ON notice (id) WHERE followup_pending;

-- Codes are looked up by equality only: a hash index stores a four-byte
-- hash per account instead of the 32-byte lookup hash.
DROP INDEX account_code_hash_idx;
CREATE INDEX account_code_hash_idx ON account USING hash (code_hash) WHERE code_hash IS NOT NULL;

-- A wave's accounts in a state, and the notified accounts by deadline, are
-- read as sets: without the account id as a last column, the entries of a
-- wave and state (of a deadline: a day's letters share it) are stored once
-- with the list of their rows (B-tree deduplication).
DROP INDEX account_wave_state_idx;
CREATE INDEX account_wave_state_idx ON account (wave_id, state);
DROP INDEX account_deadline_idx;
CREATE INDEX account_deadline_idx ON account (deadline) WHERE state = 'notified';
