-- Each accepted email is recorded on its notice at once, one update per
-- message (see MarkEmailAccepted). Those updates stay on the row's page and
-- touch no index (PostgreSQL's HOT updates) when the page has room and no
-- indexed column changes: leave a fifth of each page free, and find pending
-- letters by their missing batch rather than by their status.
ALTER TABLE notice SET (fillfactor = 80);
DROP INDEX notice_pending_letter_idx;
CREATE INDEX notice_pending_letter_idx ON notice (department, id) WHERE channel = 'letter' AND batch_id IS NULL;
