-- The feed's primary key, a B-tree entry for every change, took 39 bytes a
-- person (their created and notified changes) to guarantee what the
-- numbering already does: every change takes the next number of
-- account_feed_head, under the audit log's lock held until commit, so the
-- numbers are unique, without gaps, and laid in the table in their order
-- (the feed is append-only). A reader asks for a range of numbers, which a
-- block-range index finds: under a byte a change instead of 20.
ALTER TABLE account_change DROP CONSTRAINT account_change_pkey;
CREATE INDEX account_change_seq_idx ON account_change USING brin (seq) WITH (pages_per_range = 4, autosummarize = on);
