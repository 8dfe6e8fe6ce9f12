-- The change feed's key only grows at its end and its entries never
-- change: its pages are filled whole, not to 90% (4 B a person, over a
-- person's two changes).
ALTER INDEX account_change_pkey SET (fillfactor = 100);
