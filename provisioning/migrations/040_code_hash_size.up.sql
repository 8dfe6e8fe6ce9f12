-- An opposition code's lookup hash was a whole HMAC-SHA-256: 32 bytes, 33
-- in the account's row, which alignment rounded to 144 bytes. Half of it
-- (RFC 2104's least for a truncated HMAC) finds a code's account as surely:
-- a code has 55 secret bits, and two codes share 128 bits of hash with a
-- chance of 2^-128. 16 bytes less an account. The application computes the
-- same first 16 bytes, so the hashes kept are cut in place; the table and
-- its indexes are rewritten once, under an exclusive lock.
ALTER TABLE account
    ALTER COLUMN code_hash TYPE bytea USING substring(code_hash FROM 1 FOR 16),
    ADD CONSTRAINT account_code_hash_size CHECK (octet_length(code_hash) = 16);
