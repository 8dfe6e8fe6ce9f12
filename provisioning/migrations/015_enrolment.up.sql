-- Settings an operator turns on or off, audited; the first is continuous
-- enrolment (`ens enrol --enable`).
CREATE TABLE setting (
    name       text PRIMARY KEY,
    value      text NOT NULL,
    changed_at timestamptz NOT NULL,
    changed_by text NOT NULL
);
