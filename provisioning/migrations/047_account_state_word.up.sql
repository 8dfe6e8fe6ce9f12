-- An account's state was text: 'notified' took 9 bytes of the row, where an
-- enum takes 4. Stored first after the 8-byte numbers and times, followed by
-- the round number (a smallint: a person is sent a few codes, never 32,767)
-- and the flag, the state leaves the code's 9-byte hash no padding, so a
-- notified account takes 95 bytes, 96 in its page, instead of 103 and 104:
-- the table took 109 bytes a person at 5,000,000 people, where it took 116.
-- The state's table and the allowed transitions take the same type, so the
-- feed's trigger compares them as they are; the enum also does what
-- account_state_known checked. The table is rewritten once, in id order,
-- under an exclusive lock, as migration 042 did; its keys, checks, triggers
-- and the references to it are recreated as they were.
LOCK TABLE account IN ACCESS EXCLUSIVE MODE;

CREATE TYPE account_state_word AS ENUM
    ('pending', 'notified', 'opposed', 'active', 'closed', 'archived', 'purged', 'cancelled', 'unreachable');

ALTER TABLE account_transition DROP CONSTRAINT account_transition_from_state_fkey,
                               DROP CONSTRAINT account_transition_to_state_fkey;
ALTER TABLE account_state ALTER COLUMN state TYPE account_state_word USING state::account_state_word;
ALTER TABLE account_transition ALTER COLUMN from_state TYPE account_state_word USING from_state::account_state_word,
                               ALTER COLUMN to_state TYPE account_state_word USING to_state::account_state_word,
                               ADD CONSTRAINT account_transition_from_state_fkey FOREIGN KEY (from_state) REFERENCES account_state,
                               ADD CONSTRAINT account_transition_to_state_fkey FOREIGN KEY (to_state) REFERENCES account_state;

CREATE TABLE account_rows (
    id                  bigint      NOT NULL,
    person_id           bigint,
    wave_id             bigint      NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    notified_at         timestamptz,
    deadline            timestamptz,
    opposed_at          timestamptz,
    activated_at        timestamptz,
    closed_at           timestamptz,
    cancelled_at        timestamptz,
    unreachable_at      timestamptz,
    state               account_state_word NOT NULL,
    notice_round        smallint    NOT NULL DEFAULT 0,
    activated_by_holder boolean     NOT NULL DEFAULT false,
    -- Keyed hash of the opposition code; never the code itself.
    code_hash           bytea,
    unreachable_reason  text
);
INSERT INTO account_rows
SELECT id, person_id, wave_id, created_at, notified_at, deadline, opposed_at, activated_at, closed_at,
       cancelled_at, unreachable_at, state::account_state_word, notice_round, activated_by_holder, code_hash, unreachable_reason
FROM account ORDER BY id;

ALTER SEQUENCE account_id_seq OWNED BY NONE;
ALTER TABLE notice DROP CONSTRAINT notice_account_id_fkey;
ALTER TABLE archive DROP CONSTRAINT archive_account_id_fkey;
ALTER TABLE purge_trace DROP CONSTRAINT purge_trace_account_id_fkey;
ALTER TABLE opposition DROP CONSTRAINT opposition_account_id_fkey;
DROP TABLE account;
ALTER TABLE account_rows RENAME TO account;
ALTER TABLE account ALTER COLUMN id SET DEFAULT nextval('account_id_seq');
ALTER SEQUENCE account_id_seq OWNED BY account.id;

ALTER TABLE account
    ADD CONSTRAINT account_pkey PRIMARY KEY (id),
    ADD CONSTRAINT account_person_id_key UNIQUE (person_id),
    ADD CONSTRAINT account_check CHECK (state IN ('pending', 'cancelled', 'unreachable', 'opposed') OR notified_at IS NOT NULL OR activated_at IS NOT NULL),
    ADD CONSTRAINT account_check1 CHECK (state <> 'notified' OR (notified_at IS NOT NULL AND deadline IS NOT NULL)),
    ADD CONSTRAINT account_check2 CHECK (state <> 'opposed' OR opposed_at IS NOT NULL),
    ADD CONSTRAINT account_check3 CHECK (state <> 'active' OR activated_at IS NOT NULL),
    ADD CONSTRAINT account_check4 CHECK (state NOT IN ('closed', 'archived', 'purged') OR closed_at IS NOT NULL),
    ADD CONSTRAINT account_check5 CHECK (state <> 'cancelled' OR cancelled_at IS NOT NULL),
    ADD CONSTRAINT account_check6 CHECK (deadline IS NULL OR notified_at IS NULL OR deadline > notified_at),
    ADD CONSTRAINT account_check7 CHECK ((state = 'purged') = (person_id IS NULL)),
    ADD CONSTRAINT account_check8 CHECK ((state = 'unreachable') = (unreachable_reason IS NOT NULL AND unreachable_at IS NOT NULL)),
    ADD CONSTRAINT account_code_hash_size CHECK (octet_length(code_hash) = 8);
CREATE INDEX account_wave_state_idx ON account (wave_id, state);
CREATE INDEX account_deadline_idx ON account (deadline) WHERE state = 'notified';
CREATE INDEX account_code_hash_idx ON account USING hash (code_hash) WITH (fillfactor = 100) WHERE code_hash IS NOT NULL;

ALTER TABLE notice ADD CONSTRAINT notice_account_id_fkey FOREIGN KEY (account_id) REFERENCES account (id);
ALTER TABLE archive ADD CONSTRAINT archive_account_id_fkey FOREIGN KEY (account_id) REFERENCES account (id);
ALTER TABLE purge_trace ADD CONSTRAINT purge_trace_account_id_fkey FOREIGN KEY (account_id) REFERENCES account (id);
ALTER TABLE opposition ADD CONSTRAINT opposition_account_id_fkey FOREIGN KEY (account_id) REFERENCES account (id);

-- The feed's words begin with the states' words, so a state read as a
-- change word (by the feed's trigger and the replaced numbers' writer) is
-- the same word, as it was from text.
CREATE CAST (account_state_word AS account_change_word) WITH INOUT;

CREATE TRIGGER account_feed_insert AFTER INSERT ON account REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ens_feed_changes();
CREATE TRIGGER account_feed_update AFTER UPDATE ON account REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ens_feed_changes();
ANALYZE account;

-- A state written from a text value (a CASE of words, a parameter typed
-- text) is read as the enum's word, as it was before.
CREATE CAST (text AS account_state_word) WITH INOUT AS ASSIGNMENT;
