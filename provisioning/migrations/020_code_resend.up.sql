-- A code sent again at its holder's request (ens code resend): a notice of
-- its own kind, numbered by seq (1, 2, 3: a person gets at most three), on
-- the channel that reached them, with the account's deadline unchanged.
ALTER TABLE notice DROP CONSTRAINT notice_kind_check;
ALTER TABLE notice ADD CONSTRAINT notice_kind_check CHECK (kind IN ('opposition', 'information', 'extension', 'resend'));
