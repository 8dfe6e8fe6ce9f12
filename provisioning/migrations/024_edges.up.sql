-- The promise at the edges of real life.

-- A refusal is possible in every state before activation: a pending or an
-- unreachable person may oppose through an agent or by post; an opposition
-- withdrawn before any notice leaves the account pending, for a notice to
-- tell them. A letter returned after the window activated its person moves
-- them back to unreachable.
INSERT INTO account_transition VALUES
    ('pending', 'opposed'),
    ('unreachable', 'opposed'),
    ('opposed', 'pending'),
    ('active', 'unreachable');
DO $$
DECLARE c text;
BEGIN
    SELECT conname INTO c FROM pg_constraint WHERE conrelid = 'account'::regclass AND contype = 'c'
       AND pg_get_constraintdef(oid) LIKE '%notified_at IS NOT NULL) OR (activated_at IS NOT NULL%';
    EXECUTE format('ALTER TABLE account DROP CONSTRAINT %I', c);
END $$;
ALTER TABLE account ADD CHECK (state IN ('pending', 'cancelled', 'unreachable', 'opposed')
    OR notified_at IS NOT NULL OR activated_at IS NOT NULL);

-- A person no wave has selected yet may refuse too: the refusal is recorded
-- on the person, and no later wave selects them.
ALTER TABLE person ADD COLUMN opposed_at timestamptz;
ALTER TABLE opposition ALTER COLUMN account_id DROP NOT NULL,
    ADD COLUMN person_id bigint REFERENCES person (id) ON DELETE CASCADE,
    ADD CHECK ((account_id IS NULL) <> (person_id IS NULL));
CREATE UNIQUE INDEX opposition_standing_person_idx ON opposition (person_id) WHERE undone_at IS NULL AND person_id IS NOT NULL;

-- A refusal postmarked in time and read after the activation closes the
-- account as opposed late: archived only until its purge, within three months.
DO $$
DECLARE c text;
BEGIN
    SELECT conname INTO c FROM pg_constraint WHERE conrelid = 'archive'::regclass AND contype = 'c'
       AND pg_get_constraintdef(oid) LIKE '%fraud%';
    EXECUTE format('ALTER TABLE archive DROP CONSTRAINT %I', c);
END $$;
ALTER TABLE archive ADD CHECK (reason IN ('request', 'deceased', 'fraud', 'opposed_late'));

-- The person's organisme d'affiliation (caisse): its department places a
-- person without a postal address in a department's wave.
ALTER TABLE person ADD COLUMN caisse text CHECK (caisse ~ '^([0-9]{2}|2[AB])[0-9]$');
ALTER TABLE registry_stage ADD COLUMN caisse text;

-- The time zone of a department of residence: the window ends at the end of
-- the printed day there, never before it ends in Paris.
CREATE FUNCTION ens_time_zone(department text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE department
        WHEN '971' THEN 'America/Guadeloupe'
        WHEN '972' THEN 'America/Martinique'
        WHEN '973' THEN 'America/Cayenne'
        WHEN '974' THEN 'Indian/Reunion'
        WHEN '975' THEN 'America/Miquelon'
        WHEN '976' THEN 'Indian/Mayotte'
        WHEN '977' THEN 'America/St_Barthelemy'
        WHEN '978' THEN 'America/Marigot'
        WHEN '986' THEN 'Pacific/Wallis'
        WHEN '987' THEN 'Pacific/Tahiti'
        WHEN '988' THEN 'Pacific/Noumea'
        ELSE 'Europe/Paris' END $$;

-- The last moment an opposition counts for a deadline, for a person living
-- in department: a deadline at the end of a day (23:59:59 in Paris) lasts to
-- the end of that calendar day in the person's time zone, never less; a
-- rehearsal's deadline (any other time) is kept as it is.
CREATE FUNCTION ens_local_deadline(deadline timestamptz, department text) RETURNS timestamptz
    LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN deadline IS NULL OR (deadline AT TIME ZONE 'Europe/Paris')::time <> time '23:59:59' THEN deadline
        ELSE greatest(deadline, ((deadline AT TIME ZONE 'Europe/Paris')::date + time '23:59:59') AT TIME ZONE ens_time_zone(department))
        END $$;
