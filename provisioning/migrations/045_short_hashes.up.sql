-- Two keyed hashes are kept in 8 bytes, not 16: the lookup hash of an
-- account's opposition code and the hash of the address a notice's email
-- was accepted for. Neither is a MAC anyone verifies against a forger: one
-- finds an account from a code a person typed (55 secret bits, fewer than
-- the hash's 64: the odds that two of 65 million different codes share a
-- hash are about one in 9,000, and the lookup would tell them apart by
-- birth date, as it tells apart two accounts sharing a code), the other checks
-- that a bounce report names the address the email went to. Both are the
-- first 8 bytes of the HMAC they were cut from, so what is stored stays
-- valid cut shorter. A notified account's row takes 103 bytes instead of
-- 111, a sent email's notice 101 instead of 109: 8 bytes each in their
-- pages, 16 a person notified by email.
ALTER TABLE account
    DROP CONSTRAINT account_code_hash_size,
    ALTER COLUMN code_hash TYPE bytea USING substring(code_hash FROM 1 FOR 8),
    ADD CONSTRAINT account_code_hash_size CHECK (octet_length(code_hash) = 8);
ALTER TABLE notice
    ALTER COLUMN recipient_hash TYPE bytea USING substring(recipient_hash FROM 1 FOR 8),
    ADD CONSTRAINT notice_recipient_hash_size CHECK (octet_length(recipient_hash) = 8);
