-- A deleted account's data, kept ten years (SPEC §6). Personal data lives in
-- person_data only; the purge deletes the row and leaves a purge_trace.
CREATE TABLE archive (
    account_id   bigint      PRIMARY KEY REFERENCES account (id),
    reason       text        NOT NULL CHECK (reason IN ('request', 'deceased', 'fraud')),
    deleted_at   timestamptz NOT NULL,
    deleted_by   text        NOT NULL,
    retain_until timestamptz NOT NULL,
    person_data  jsonb       NOT NULL,
    CHECK (retain_until > deleted_at)
);
CREATE INDEX archive_retain_idx ON archive (retain_until, account_id);

-- What is left once the ten years are over: no personal data.
CREATE TABLE purge_trace (
    account_id  bigint      PRIMARY KEY REFERENCES account (id),
    reason      text        NOT NULL,
    deleted_at  timestamptz NOT NULL,
    purged_at   timestamptz NOT NULL,
    -- Keyed hash of the NIR, so that a later re-registration is recognised.
    nir_hash    bytea       NOT NULL
);
CREATE INDEX purge_trace_nir_idx ON purge_trace (nir_hash);

-- Every purge run, dry or real, for the reports.
CREATE TABLE purge_run (
    id      bigserial PRIMARY KEY,
    at      timestamptz NOT NULL,
    dry_run boolean     NOT NULL,
    due     bigint      NOT NULL,
    purged  bigint      NOT NULL
);
