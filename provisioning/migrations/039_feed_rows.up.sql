-- A change's row took 94 bytes with its share of the page: nine columns
-- need a null bitmap of two bytes, which rounds the row's header up from 24
-- bytes to 32; and a change with no cause stored an empty word. The
-- change's word follows from the states it goes from and to (and, for a new
-- number, the number replaced): it is computed when read, by
-- ens_change_word. A change without a cause stores none. Eight columns keep
-- the header at 24 bytes: 77 bytes a change, 33 bytes less a person over
-- their created and notified changes. The feed is rewritten once, in
-- sequence order, after checking that every change's word follows from its
-- states.
CREATE FUNCTION ens_change_word(state account_change_word, previous account_change_word, replaced_nir text)
    RETURNS account_change_word LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN replaced_nir IS NOT NULL THEN 'replaced'
                WHEN previous IS NULL THEN 'created'
                WHEN state = 'active' AND previous = 'archived' THEN 'reopened'
                WHEN state = 'active' THEN 'activated'
                WHEN previous = 'opposed' AND state IN ('notified', 'pending') THEN 'opposition_withdrawn'
                ELSE state END::account_change_word $$;

LOCK TABLE account_change IN ACCESS EXCLUSIVE MODE;
DO $$
BEGIN
    IF EXISTS (SELECT FROM account_change WHERE change <> ens_change_word(state, previous, replaced_nir)) THEN
        RAISE EXCEPTION 'a change of the feed does not follow from its states: the feed is left as it is';
    END IF;
END $$;

CREATE TABLE account_change_rows (
    seq          bigint      NOT NULL,
    at           timestamptz NOT NULL,
    account_id   bigint      NOT NULL,
    nir          text COLLATE "C" NOT NULL,
    state        account_change_word NOT NULL,
    previous     account_change_word,
    cause        text CHECK (cause <> ''),
    replaced_nir text
);
INSERT INTO account_change_rows
SELECT seq, at, account_id, nir, state, previous, nullif(cause, ''), replaced_nir FROM account_change ORDER BY seq;
DROP TABLE account_change;
ALTER TABLE account_change_rows RENAME TO account_change;
ALTER TABLE account_change ADD CONSTRAINT account_change_pkey PRIMARY KEY (seq) WITH (fillfactor = 100);
CREATE INDEX account_change_account_idx ON account_change
    USING brin (account_id int8_minmax_multi_ops (values_per_range = 64)) WITH (pages_per_range = 8, autosummarize = on);
CREATE TRIGGER account_change_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON account_change
    FOR EACH STATEMENT EXECUTE FUNCTION account_change_append_only();

CREATE OR REPLACE FUNCTION ens_feed_changes() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    n       bigint;
    written bigint;
    base    bigint;
    bad_id  bigint;
    bad     record;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT count(*) INTO n FROM new_rows;
        IF EXISTS (SELECT FROM new_rows nr WHERE NOT EXISTS (SELECT FROM wave w WHERE w.id = nr.wave_id)) THEN
            RAISE EXCEPTION 'an account names a wave that does not exist' USING ERRCODE = 'foreign_key_violation';
        END IF;
    ELSE
        SELECT count(*) FILTER (WHERE o.state IS DISTINCT FROM nr.state),
               min(nr.id) FILTER (WHERE (o.state <> nr.state AND t.from_state IS NULL)
                                     OR nr.wave_id <> o.wave_id OR nr.person_id <> o.person_id)
        INTO n, bad_id
        FROM new_rows nr JOIN old_rows o ON o.id = nr.id
        LEFT JOIN account_transition t ON t.from_state = o.state AND t.to_state = nr.state;
        IF bad_id IS NOT NULL THEN
            SELECT o.state AS old_state, nr.state AS new_state INTO bad
            FROM new_rows nr JOIN old_rows o ON o.id = nr.id WHERE nr.id = bad_id;
            IF bad.old_state <> bad.new_state
               AND NOT EXISTS (SELECT FROM account_transition t WHERE t.from_state = bad.old_state AND t.to_state = bad.new_state) THEN
                RAISE EXCEPTION 'account %: transition % -> % is not allowed', bad_id, bad.old_state, bad.new_state
                    USING ERRCODE = 'check_violation';
            END IF;
            RAISE EXCEPTION 'account %: its person and its wave do not change', bad_id USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    IF n = 0 THEN
        RETURN NULL;
    END IF;
    PERFORM pg_advisory_xact_lock(7100002); -- the audit log's lock: one order for both
    UPDATE account_feed_head SET seq = seq + n RETURNING seq - n INTO base;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO account_change (seq, at, account_id, nir, state, previous, cause)
        SELECT base + row_number() OVER (ORDER BY nr.id), now(), nr.id, p.nir, nr.state::account_change_word, NULL,
               CASE WHEN nr.state = 'active' THEN 'newborn' ELSE nullif(current_setting('ens.cause', true), '') END
        FROM new_rows nr JOIN person p ON p.id = nr.person_id;
        GET DIAGNOSTICS written = ROW_COUNT;
        IF written <> n THEN
            RAISE EXCEPTION 'an account names a person who does not exist' USING ERRCODE = 'foreign_key_violation';
        END IF;
        RETURN NULL;
    END IF;
    INSERT INTO account_change (seq, at, account_id, nir, state, previous, cause)
    SELECT base + row_number() OVER (ORDER BY nr.id), now(), nr.id, p.nir,
           nr.state::account_change_word, o.state::account_change_word,
           CASE WHEN nr.state = 'active' AND nr.activated_by_holder AND o.state = 'notified' THEN 'holder'
                WHEN nr.state = 'active' AND o.state = 'notified' THEN 'window_closed'
                WHEN nr.state = 'active' AND o.state = 'opposed' THEN 'reinstated'
                WHEN nr.state IN ('closed', 'archived') THEN nullif((SELECT x.reason FROM archive x WHERE x.account_id = nr.id), '')
                WHEN nr.state = 'unreachable' THEN nullif(nr.unreachable_reason, '')
                ELSE nullif(current_setting('ens.cause', true), '') END
    FROM new_rows nr JOIN old_rows o ON o.id = nr.id JOIN person p ON p.id = coalesce(nr.person_id, o.person_id)
    WHERE o.state IS DISTINCT FROM nr.state;
    RETURN NULL;
END $$;
