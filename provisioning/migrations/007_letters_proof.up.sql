-- A letter informs its person only once the printer has handed it to La
-- Poste: a rendered batch waits for its posting acknowledgement, and its
-- people are never activated before it.
ALTER TABLE letter_batch
    ADD COLUMN posted_on       date,
    ADD COLUMN posted_by       text,
    ADD COLUMN acknowledged_at timestamptz,
    -- PDFs hold codes: deleted ENS_LETTER_RETENTION after posting; the row,
    -- its manifest's name and the SHA-256 stay.
    ADD COLUMN files_deleted_at timestamptz,
    ADD CHECK (posted_on IS NULL OR (posted_by IS NOT NULL AND acknowledged_at IS NOT NULL));
CREATE INDEX letter_batch_unposted_idx ON letter_batch (rendered_at) WHERE posted_on IS NULL;

-- Letter notices: printed (in a rendered batch, not yet posted), then sent
-- (posted); returned when La Poste brings one back (NPAI).
ALTER TABLE notice DROP CONSTRAINT notice_status_check;
ALTER TABLE notice ADD CONSTRAINT notice_status_check
    CHECK (status IN ('pending', 'printed', 'sent', 'failed', 'bounced', 'cancelled', 'returned'));
ALTER TABLE notice ADD COLUMN returned_on date;

-- Unreachable: no deliverable channel is left (the email failed and no
-- postal address is known, or the letter came back). Never activated; listed
-- for the call centre; a new address re-notifies (ens wave renotify).
INSERT INTO account_state VALUES ('unreachable');
INSERT INTO account_transition VALUES
    ('pending', 'unreachable'),
    ('notified', 'unreachable'),
    ('unreachable', 'pending'),
    ('unreachable', 'cancelled');
ALTER TABLE account ADD COLUMN unreachable_reason text, ADD COLUMN unreachable_at timestamptz,
    ADD CHECK ((state = 'unreachable') = (unreachable_reason IS NOT NULL AND unreachable_at IS NOT NULL));
-- Which round of notices is current: a re-notified account starts a new
-- round (its earlier notices stay as history, with their seq).
ALTER TABLE account ADD COLUMN notice_round int NOT NULL DEFAULT 0;
-- A person found unreachable before any notice left has no notified_at.
DO $$
DECLARE c text;
BEGIN
    SELECT conname INTO c FROM pg_constraint WHERE conrelid = 'account'::regclass AND contype = 'c'
       AND pg_get_constraintdef(oid) LIKE '%notified_at IS NOT NULL) OR (activated_at IS NOT NULL%';
    EXECUTE format('ALTER TABLE account DROP CONSTRAINT %I', c);
END $$;
ALTER TABLE account ADD CHECK (state IN ('pending', 'cancelled', 'unreachable') OR notified_at IS NOT NULL OR activated_at IS NOT NULL);
