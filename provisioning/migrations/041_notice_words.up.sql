-- A notice's kind, channel and status were words: 11, 6 and 5 bytes for an
-- opposition email sent, 24 with the alignment of what follows them. They
-- are enumerations: 4 bytes each, 16 B less a notice. They read and compare
-- as the same words. The notices and their indexes are rewritten once,
-- under an exclusive lock.
CREATE TYPE notice_kind AS ENUM ('opposition', 'information', 'extension', 'resend', 'copy', 'change');
CREATE TYPE notice_channel AS ENUM ('email', 'letter');
CREATE TYPE notice_status AS ENUM ('pending', 'printed', 'sent', 'failed', 'bounced', 'cancelled', 'returned');

-- What reads the words as text is set aside while they change type: the
-- follow-ups' column (with its index), the keys and the checks.
ALTER TABLE notice DROP COLUMN followup_pending;
DROP INDEX notice_account_slot_seq_key;
DROP INDEX notice_pending_letter_idx;
ALTER TABLE notice
    DROP CONSTRAINT notice_change_topic,
    DROP CONSTRAINT notice_channel_check,
    DROP CONSTRAINT notice_check,
    DROP CONSTRAINT notice_deadline_when_sent,
    DROP CONSTRAINT notice_kind_check,
    DROP CONSTRAINT notice_slot_known,
    DROP CONSTRAINT notice_status_check,
    ALTER COLUMN status DROP DEFAULT;
DROP FUNCTION ens_notice_slot(text, text);

ALTER TABLE notice
    ALTER COLUMN kind TYPE notice_kind USING kind::notice_kind,
    ALTER COLUMN channel TYPE notice_channel USING channel::notice_channel,
    ALTER COLUMN status TYPE notice_status USING status::notice_status,
    ALTER COLUMN status SET DEFAULT 'pending',
    ADD COLUMN followup_pending boolean GENERATED ALWAYS AS (
        CASE WHEN status = 'pending' AND channel = 'email' AND kind IN ('extension', 'resend', 'copy', 'change') THEN true END) STORED,
    ADD CONSTRAINT notice_change_topic CHECK ((kind = 'change') = (topic IS NOT NULL)),
    ADD CONSTRAINT notice_sent_when CHECK (status <> 'sent' OR sent_at IS NOT NULL),
    ADD CONSTRAINT notice_deadline_when_sent CHECK (kind IN ('information', 'change') OR status <> 'sent' OR deadline IS NOT NULL);

-- The unique key's slot (migration 038), numbered from the enumerations.
CREATE FUNCTION ens_notice_slot(kind notice_kind, channel notice_channel) RETURNS smallint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ((CASE kind WHEN 'opposition' THEN 0 WHEN 'information' THEN 1 WHEN 'extension' THEN 2
                       WHEN 'resend' THEN 3 WHEN 'copy' THEN 4 WHEN 'change' THEN 5 END) * 2
          + (CASE channel WHEN 'email' THEN 0 WHEN 'letter' THEN 1 END))::smallint $$;
-- A kind or a channel added to an enumeration and not numbered here would
-- escape the key.
ALTER TABLE notice ADD CONSTRAINT notice_slot_known CHECK (ens_notice_slot(kind, channel) IS NOT NULL);
CREATE UNIQUE INDEX notice_account_slot_seq_key ON notice (account_id, ens_notice_slot(kind, channel), seq);
CREATE INDEX notice_pending_letter_idx ON notice (department, id) WHERE channel = 'letter' AND batch_id IS NULL;
CREATE INDEX notice_pending_followup_idx ON notice (id) WHERE followup_pending;
