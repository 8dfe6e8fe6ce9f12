-- Every notice sent, or to be sent, to a person (or their representative).
CREATE TABLE notice (
    id          bigserial PRIMARY KEY,
    account_id  bigint      NOT NULL REFERENCES account (id),
    -- opposition: the first notice, with a code; information: newborns, no
    -- code; extension: a wave's window was extended.
    kind        text        NOT NULL CHECK (kind IN ('opposition', 'information', 'extension')),
    channel     text        NOT NULL CHECK (channel IN ('email', 'letter')),
    -- Distinguishes successive extension notices; 0 otherwise.
    seq         int         NOT NULL DEFAULT 0,
    status      text        NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'sent', 'failed', 'bounced', 'cancelled')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz,
    deadline    timestamptz,
    attempts    int         NOT NULL DEFAULT 0,
    -- Why a notice failed: an SMTP code and class, never an address.
    error       text,
    -- Department of the letter's addressee (the representative's for a
    -- minor), fixed when the letter is created: batches are per department.
    department  text COLLATE "C",
    -- The letter batch and page it was printed on.
    batch_id    bigint,
    page        int,
    UNIQUE (account_id, kind, channel, seq),
    CHECK (status <> 'sent' OR sent_at IS NOT NULL),
    CHECK (kind = 'information' OR status <> 'sent' OR deadline IS NOT NULL)
);
CREATE INDEX notice_pending_letter_idx ON notice (department, id) WHERE status = 'pending' AND channel = 'letter';

-- A rendered letter PDF: one department of one wave, sorted by postcode.
CREATE TABLE letter_batch (
    id          bigserial PRIMARY KEY,
    wave_id     bigint      NOT NULL REFERENCES wave (id),
    department  text        NOT NULL,
    file        text        NOT NULL,
    manifest    text        NOT NULL,
    sha256      text        NOT NULL,
    pages       int         NOT NULL CHECK (pages > 0),
    rendered_at timestamptz NOT NULL
);
ALTER TABLE notice ADD FOREIGN KEY (batch_id) REFERENCES letter_batch (id);
