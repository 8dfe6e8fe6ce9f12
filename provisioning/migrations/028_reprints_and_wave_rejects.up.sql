-- A batch withdrawn before it was posted (lost at the printer, or too late
-- for its printed date): its letters are rendered again in a new batch, and
-- this one may no longer be acknowledged as posted.
ALTER TABLE letter_batch
    ADD COLUMN withdrawn_at timestamptz,
    ADD COLUMN withdrawn_by text,
    ADD CONSTRAINT letter_batch_withdrawn_unposted CHECK (withdrawn_at IS NULL OR posted_on IS NULL);

-- Letters taken out of a batch not yet posted, to be printed again: every
-- letter of a withdrawn batch, or one whose address changed after it was
-- printed. The batch's manifest still lists them; the printer pulls those
-- pages (or destroys the whole batch).
CREATE TABLE letter_withdrawal (
    batch_id     bigint NOT NULL REFERENCES letter_batch (id),
    notice_id    bigint NOT NULL REFERENCES notice (id),
    page         int,
    withdrawn_at timestamptz NOT NULL,
    reason       text NOT NULL,
    PRIMARY KEY (batch_id, notice_id)
);

-- A rejected row's department (from its postcode, else its caisse), so
-- that a wave's report counts the rejects of its own departments.
ALTER TABLE registry_reject ADD COLUMN department text;
