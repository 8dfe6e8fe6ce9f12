-- A change carries its person's NIR, which took 16 bytes as text (its 15
-- characters and their length) and left the row 4 bytes past an 8-byte
-- boundary; as a number it takes 8: 72 → 64 bytes a change, 16 bytes a
-- person over their created and notified changes. A NIR is 15 digits but
-- for Corsica's 2A and 2B in the department's place: those are stored with
-- a 0 for the letter, plus 10^15 for A or 2 × 10^15 for B. The feed reads
-- them back as they were written, through ens_nir_text.
--
-- Every person's NIR must be one a number can hold, or the change feed —
-- and with it the account's change that writes to it — would refuse it:
-- the import already checks a NIR's shape, and now the table does too,
-- in place of its check of the NIR's length alone.
ALTER TABLE person
    DROP CONSTRAINT person_nir_check,
    ADD CONSTRAINT person_nir_shape CHECK (nir ~ '^[0-9]{5}([0-9]{2}|2[AB])[0-9]{8}$');

-- Never the NIR itself in the message: it would reach a log.
CREATE FUNCTION ens_nir_refuse() RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RAISE EXCEPTION 'a NIR of the wrong shape cannot enter the change feed' USING ERRCODE = 'check_violation';
END $$;

-- Volatile, as what it may call, so that the planner writes it into the
-- statement that calls it rather than calling it for each row.
CREATE FUNCTION ens_nir_number(nir text) RETURNS bigint LANGUAGE sql VOLATILE AS $$
    SELECT CASE WHEN nir !~ '^[0-9]{5}([0-9]{2}|2[AB])[0-9]{8}$' THEN ens_nir_refuse()
                ELSE translate(nir, 'AB', '00')::bigint
                     + CASE substr(nir, 7, 1) WHEN 'A' THEN 1000000000000000 WHEN 'B' THEN 2000000000000000 ELSE 0 END END $$;

CREATE FUNCTION ens_nir_text(nir bigint) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN nir < 1000000000000000 THEN lpad(nir::text, 15, '0')
                ELSE overlay(lpad((nir % 1000000000000000)::text, 15, '0')
                             PLACING CASE WHEN nir < 2000000000000000 THEN 'A' ELSE 'B' END FROM 7 FOR 1) END $$;

LOCK TABLE account_change IN ACCESS EXCLUSIVE MODE;
DROP FUNCTION ens_change_word(account_change_word, account_change_word, text);
ALTER TABLE account_change
    ALTER COLUMN nir TYPE bigint USING ens_nir_number(nir),
    ALTER COLUMN replaced_nir TYPE bigint USING ens_nir_number(replaced_nir);

CREATE FUNCTION ens_change_word(state account_change_word, previous account_change_word, replaced_nir bigint)
    RETURNS account_change_word LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN replaced_nir IS NOT NULL THEN 'replaced'
                WHEN previous IS NULL THEN 'created'
                WHEN state = 'active' AND previous = 'archived' THEN 'reopened'
                WHEN state = 'active' THEN 'activated'
                WHEN previous = 'opposed' AND state IN ('notified', 'pending') THEN 'opposition_withdrawn'
                ELSE state END::account_change_word $$;

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
        SELECT base + row_number() OVER (ORDER BY nr.id), now(), nr.id, ens_nir_number(p.nir), nr.state::account_change_word, NULL,
               CASE WHEN nr.state = 'active' THEN 'newborn' ELSE nullif(current_setting('ens.cause', true), '') END
        FROM new_rows nr JOIN person p ON p.id = nr.person_id;
        GET DIAGNOSTICS written = ROW_COUNT;
        IF written <> n THEN
            RAISE EXCEPTION 'an account names a person who does not exist' USING ERRCODE = 'foreign_key_violation';
        END IF;
        RETURN NULL;
    END IF;
    INSERT INTO account_change (seq, at, account_id, nir, state, previous, cause)
    SELECT base + row_number() OVER (ORDER BY nr.id), now(), nr.id, ens_nir_number(p.nir),
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
