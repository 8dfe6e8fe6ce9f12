-- Oppositions recorded by a call-centre agent without the code, after an
-- identity check (who checked is audited and kept), and mailed oppositions
-- that count by their postmark.
ALTER TABLE opposition
    ADD COLUMN identity_checked_by text,
    ADD COLUMN postmarked_on       date;
