-- The change feed the Mon espace santé platform reads: every change of an
-- account's state, written by the statement that makes it (so in the same
-- transaction), numbered without gaps in commit order. Writers number their
-- changes under the audit log's lock, which every transaction changing an
-- account holds until it commits anyway: a reader reading after sequence N
-- never misses a change numbered below a later one.
CREATE TABLE account_change (
    seq        bigint      PRIMARY KEY,
    at         timestamptz NOT NULL,
    account_id bigint      NOT NULL,
    nir        text COLLATE "C" NOT NULL,
    change     text        NOT NULL,
    state      text        NOT NULL,
    previous   text,
    cause      text        NOT NULL DEFAULT ''
);
CREATE TABLE account_feed_head (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    seq bigint  NOT NULL
);
INSERT INTO account_feed_head VALUES (true, 0);

-- Append-only, as the audit log.
CREATE FUNCTION account_change_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the change feed is append-only';
END $$;
CREATE TRIGGER account_change_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON account_change
    FOR EACH STATEMENT EXECUTE FUNCTION account_change_append_only();

-- ens_feed_changes numbers and writes the changes a statement made to
-- account, from its transition tables.
CREATE FUNCTION ens_feed_changes() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    n    bigint;
    base bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT count(*) INTO n FROM new_rows;
    ELSE
        SELECT count(*) INTO n FROM new_rows nr JOIN old_rows o ON o.id = nr.id WHERE o.state IS DISTINCT FROM nr.state;
    END IF;
    IF n = 0 THEN
        RETURN NULL;
    END IF;
    PERFORM pg_advisory_xact_lock(7100002); -- the audit log's lock: one order for both
    UPDATE account_feed_head SET seq = seq + n RETURNING seq - n INTO base;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO account_change (seq, at, account_id, nir, change, state, previous, cause)
        SELECT base + row_number() OVER (ORDER BY nr.id), now(), nr.id, p.nir, 'created', nr.state, NULL,
               CASE WHEN nr.state = 'active' THEN 'newborn' ELSE coalesce(current_setting('ens.cause', true), '') END
        FROM new_rows nr JOIN person p ON p.id = nr.person_id;
        RETURN NULL;
    END IF;
    INSERT INTO account_change (seq, at, account_id, nir, change, state, previous, cause)
    SELECT base + row_number() OVER (ORDER BY nr.id), now(), nr.id, p.nir,
           CASE WHEN nr.state = 'active' AND o.state = 'archived' THEN 'reopened'
                WHEN nr.state = 'active' THEN 'activated'
                WHEN o.state = 'opposed' AND nr.state IN ('notified', 'pending') THEN 'opposition_withdrawn'
                ELSE nr.state END,
           nr.state, o.state,
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
CREATE TRIGGER account_feed_insert AFTER INSERT ON account REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ens_feed_changes();
CREATE TRIGGER account_feed_update AFTER UPDATE ON account REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ens_feed_changes();

-- What the push to the platform has delivered: the last sequence it
-- acknowledged, and the batch being sent (after acked_seq, up to
-- sending_seq), which a retry sends again, whole, under the same key.
CREATE TABLE platform_push (
    one         boolean PRIMARY KEY DEFAULT true CHECK (one),
    acked_seq   bigint      NOT NULL,
    sending_seq bigint      NOT NULL,
    acked_at    timestamptz,
    failures    bigint      NOT NULL DEFAULT 0,
    last_error  text,
    CHECK (sending_seq >= acked_seq)
);
INSERT INTO platform_push VALUES (true, 0, 0, NULL, 0, NULL);
