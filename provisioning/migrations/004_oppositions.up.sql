-- Every opposition, with its receipt reference. Undone when the person
-- changed their mind within the window.
CREATE TABLE opposition (
    id         bigserial PRIMARY KEY,
    reference  text        NOT NULL UNIQUE,
    account_id bigint      NOT NULL REFERENCES account (id),
    at         timestamptz NOT NULL,
    channel    text        NOT NULL CHECK (channel IN ('web', 'api', 'agent')),
    actor      text        NOT NULL,
    undone_at  timestamptz,
    CHECK (undone_at IS NULL OR undone_at >= at)
);
-- At most one standing opposition per account.
CREATE UNIQUE INDEX opposition_standing_idx ON opposition (account_id) WHERE undone_at IS NULL;
