-- How full an index's pages are left, for how its entries change.

-- The notification moves a chunk's accounts (consecutive ids, created in
-- person order) to notified in one transaction, and cannot update them in
-- place: their state, deadline and code are indexed. Each gets a second
-- entry in the primary key and the person key, next to its first; the
-- first ones die only when the transaction commits. Filled to 90% by the
-- launch, a leaf page had room for 40 new entries, not a chunk's 100: it
-- split, and both halves stayed half empty once the dead entries were
-- gone (45 B an account in each key, twice what they hold). Filled to 70%,
-- a page takes a chunk's new entries, and PostgreSQL removes the dead ones
-- of earlier chunks before it would split (bottom-up deletion): 30 B.
-- Only pages written from now on are filled so: existing accounts are not
-- rewritten.
ALTER INDEX account_pkey SET (fillfactor = 70);
ALTER INDEX account_person_id_key SET (fillfactor = 70);

-- The change feed's key only grows at its end and its entries never
-- change: its pages are filled whole.
ALTER INDEX account_change_pkey SET (fillfactor = 100);
