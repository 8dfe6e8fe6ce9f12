-- A temporary email failure falls back to a letter once it has lasted
-- ENS_EMAIL_GIVE_UP_AFTER (as an MTA keeps a message queued for days), not
-- after a count of attempts: the first failure is when it started.
ALTER TABLE notice ADD COLUMN first_failed_at timestamptz;
-- A keyed hash (16 bytes) of the address an email was accepted for: a bounce
-- report changes a notice only when its recipient is that address. Never the
-- address itself.
ALTER TABLE notice ADD COLUMN recipient_hash bytea;

-- What each worker process last saw of its SMTP relay. A relay that fails
-- (unreachable, TLS or authentication refused, 421, every recipient
-- deferred) pauses sending: nobody moves to a letter for it. Read by
-- /metrics (ens_smtp_relay_up) and ens wave status.
CREATE TABLE smtp_relay (
    worker     text        PRIMARY KEY,
    up         boolean     NOT NULL,
    since      timestamptz NOT NULL,
    reason     text,
    checked_at timestamptz NOT NULL
);
