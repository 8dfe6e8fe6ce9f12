-- An adult under curatelle acts with their curator's assistance: the person
-- is told, and the curator gets a copy of the notice with the same code
-- (kind 'copy'), sent once the person's own notice is out and stating the
-- account's deadline.
ALTER TABLE notice DROP CONSTRAINT notice_kind_check;
ALTER TABLE notice ADD CONSTRAINT notice_kind_check CHECK (kind IN ('opposition', 'information', 'extension', 'resend', 'copy'));

-- The follow-up emails waiting (extensions, codes re-sent, curators'
-- copies): looked for after every notice chunk and every sweep.
CREATE INDEX notice_pending_followup_idx ON notice (id)
    WHERE status = 'pending' AND channel = 'email' AND kind IN ('extension', 'resend', 'copy');
