-- What monitoring reads that no other table says: the bounce reports read,
-- by outcome (a counter that survives the processes reading them), and when
-- the audit log's head was last anchored (the anchors themselves live
-- outside the database).
CREATE TABLE bounce_reading (
    outcome text   PRIMARY KEY,
    reports bigint NOT NULL DEFAULT 0
);
CREATE TABLE audit_anchor_taken (
    one      boolean     PRIMARY KEY DEFAULT true CHECK (one),
    taken_at timestamptz NOT NULL,
    head_id  bigint      NOT NULL
);
