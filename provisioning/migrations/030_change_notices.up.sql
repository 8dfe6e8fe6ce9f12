-- A notice that tells a person of a change to their account made by
-- someone else or on their behalf (an opposition withdrawn, an early
-- activation, an agent's opposition, a reinstatement), or that a profile
-- created while they were a minor is now theirs: kind 'change', with its
-- topic. It carries no code and no deadline, and moves no account.
ALTER TABLE notice ADD COLUMN topic text;
ALTER TABLE notice DROP CONSTRAINT notice_kind_check;
ALTER TABLE notice ADD CONSTRAINT notice_kind_check
    CHECK (kind IN ('opposition', 'information', 'extension', 'resend', 'copy', 'change'));
ALTER TABLE notice ADD CONSTRAINT notice_change_topic CHECK ((kind = 'change') = (topic IS NOT NULL));
DO $$
DECLARE c text;
BEGIN
    SELECT conname INTO c FROM pg_constraint WHERE conrelid = 'notice'::regclass AND contype = 'c'
       AND pg_get_constraintdef(oid) LIKE '%kind = ''information''::text) OR (status <> ''sent''::text) OR (deadline IS NOT NULL%';
    EXECUTE format('ALTER TABLE notice DROP CONSTRAINT %I', c);
END $$;
ALTER TABLE notice ADD CONSTRAINT notice_deadline_when_sent
    CHECK (kind IN ('information', 'change') OR status <> 'sent' OR deadline IS NOT NULL);

DROP INDEX notice_pending_followup_idx;
CREATE INDEX notice_pending_followup_idx ON notice (id)
    WHERE status = 'pending' AND channel = 'email' AND kind IN ('extension', 'resend', 'copy', 'change');

CREATE OR REPLACE FUNCTION ens_record_accepted_emails(ids bigint[], ats timestamptz[], deadlines timestamptz[], rcpts bytea[])
RETURNS void LANGUAGE plpgsql
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
BEGIN
    UPDATE public.notice n SET status = 'sent', sent_at = s.at,
        deadline = CASE WHEN n.kind IN ('information', 'change') THEN NULL ELSE s.deadline END, attempts = n.attempts + 1, error = NULL,
        recipient_hash = s.rcpt
    FROM unnest(ids, ats, deadlines, rcpts) AS s(id, at, deadline, rcpt)
    WHERE n.id = s.id AND n.status = 'pending';
END $$;
