-- An account's person and wave were foreign keys: each account inserted ran
-- two lookups of its own (a query per row, 4 µs each), and the person's
-- locked the person, which writes the person's page and a WAL record again:
-- at launch they were 40% of the cost of creating an account. They are now
-- checked once per statement, by a join over the statement's new rows, and
-- the rows they name are not deleted while named: waves and accounts are
-- never deleted (the application role may not), and a person is deleted
-- only by the purge, once their account let go of them (person_id NULL).
ALTER TABLE account DROP CONSTRAINT account_person_id_fkey;
ALTER TABLE account DROP CONSTRAINT account_wave_id_fkey;

-- The feed's trigger already reads each inserted account's person (its
-- NIR) and joins each updated account's old and new rows (its transition):
-- it checks the references in the same reads. An update's check and count
-- are one join instead of two.
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
        INSERT INTO account_change (seq, at, account_id, nir, change, state, previous, cause)
        SELECT base + row_number() OVER (ORDER BY nr.id), now(), nr.id, p.nir, 'created', nr.state::account_change_word, NULL,
               CASE WHEN nr.state = 'active' THEN 'newborn' ELSE coalesce(current_setting('ens.cause', true), '') END
        FROM new_rows nr JOIN person p ON p.id = nr.person_id;
        GET DIAGNOSTICS written = ROW_COUNT;
        IF written <> n THEN
            RAISE EXCEPTION 'an account names a person who does not exist' USING ERRCODE = 'foreign_key_violation';
        END IF;
        RETURN NULL;
    END IF;
    INSERT INTO account_change (seq, at, account_id, nir, change, state, previous, cause)
    SELECT base + row_number() OVER (ORDER BY nr.id), now(), nr.id, p.nir,
           (CASE WHEN nr.state = 'active' AND o.state = 'archived' THEN 'reopened'
                 WHEN nr.state = 'active' THEN 'activated'
                 WHEN o.state = 'opposed' AND nr.state IN ('notified', 'pending') THEN 'opposition_withdrawn'
                 ELSE nr.state END)::account_change_word,
           nr.state::account_change_word, o.state::account_change_word,
           CASE WHEN nr.state = 'active' AND nr.activated_by_holder AND o.state = 'notified' THEN 'holder'
                WHEN nr.state = 'active' AND o.state = 'notified' THEN 'window_closed'
                WHEN nr.state = 'active' AND o.state = 'opposed' THEN 'reinstated'
                WHEN nr.state IN ('closed', 'archived') THEN coalesce((SELECT x.reason FROM archive x WHERE x.account_id = nr.id), '')
                WHEN nr.state = 'unreachable' THEN coalesce(nr.unreachable_reason, '')
                ELSE coalesce(current_setting('ens.cause', true), '') END
    FROM new_rows nr JOIN old_rows o ON o.id = nr.id JOIN person p ON p.id = coalesce(nr.person_id, o.person_id)
    WHERE o.state IS DISTINCT FROM nr.state;
    RETURN NULL;
END $$;

-- A person still named by an account is not deleted (the purge lets go of
-- them first). Before, the foreign key's ON DELETE SET NULL met the
-- account's own check that only a purged account has no person: the same
-- deletions were refused.
CREATE FUNCTION ens_person_deletion_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM gone g JOIN account a ON a.person_id = g.id) THEN
        RAISE EXCEPTION 'a person whose account is not purged is not deleted' USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER person_deletion_guard AFTER DELETE ON person REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION ens_person_deletion_guard();

-- What is held about a person (ens account export) reads their account's
-- changes: without an index, a read of the whole feed, two rows for every
-- person ever notified. The feed is written in account order, wave by
-- wave, so a block-range index finds a person's rows for about a byte per
-- change; multi-minmax keeps it precise when a range holds a few changes
-- of other waves' accounts (oppositions, activations).
CREATE INDEX account_change_account_idx ON account_change
    USING brin (account_id int8_minmax_multi_ops (values_per_range = 64)) WITH (pages_per_range = 8, autosummarize = on);
