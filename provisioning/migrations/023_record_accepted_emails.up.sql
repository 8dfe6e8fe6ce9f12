-- The record of accepted emails — a few notices by key, each sender waiting
-- on it before it sends again — is planned once per connection and kept.
-- Planned while a wave's notice table was still small (its first chunks),
-- a hash join over a sequential scan was the cheapest plan, and the
-- connection kept it as the table grew, until autovacuum analysed the table:
-- every record read every notice of the wave (3 ms a record on a
-- 100,000-person wave). In a function, the record is planned with joins by
-- key only, however small or stale the table looks; it runs with the caller's
-- rights and names its table with its schema (no search_path to set).
CREATE FUNCTION ens_record_accepted_emails(ids bigint[], ats timestamptz[], deadlines timestamptz[], rcpts bytea[])
RETURNS void LANGUAGE plpgsql
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
BEGIN
    UPDATE public.notice n SET status = 'sent', sent_at = s.at,
        deadline = CASE WHEN n.kind = 'information' THEN NULL ELSE s.deadline END, attempts = n.attempts + 1, error = NULL,
        recipient_hash = s.rcpt
    FROM unnest(ids, ats, deadlines, rcpts) AS s(id, at, deadline, rcpt)
    WHERE n.id = s.id AND n.status = 'pending';
END $$;
