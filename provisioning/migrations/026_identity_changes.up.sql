-- A known NIR with another birth date is refused (identity_conflict): an
-- identity change is an operator's decision, never an update.
ALTER TABLE registry_reject DROP CONSTRAINT registry_reject_reason_check,
    ADD CONSTRAINT registry_reject_reason_check CHECK (reason IN ('column_count', 'encoding', 'nir_format', 'nir_key',
        'nir_birth_mismatch', 'birth_date', 'duplicate_nir', 'no_channel', 'address_too_long', 'minor_without_guardian',
        'death_date', 'name_missing', 'protection_invalid', 'protected_without_guardian', 'identity_conflict',
        'replaces_nir_invalid'));

-- Agents' oppositions without the code are capped per agent and per day.
CREATE INDEX opposition_agent_day_idx ON opposition (actor, at) WHERE identity_checked_by IS NOT NULL;

-- One person, one account, across number changes: a registry row's NIR may
-- replace another (a provisional number becoming final). The person keeps
-- their id, account and history under the new number; each replacement is
-- kept, so that the old number answers "replaced" and a second account
-- made under it is found.
ALTER TABLE registry_stage ADD COLUMN replaces_nir text;
CREATE TABLE nir_replacement (
    old_nir    text COLLATE "C" PRIMARY KEY CHECK (length(old_nir) = 15),
    new_nir    text COLLATE "C" NOT NULL CHECK (length(new_nir) = 15 AND new_nir <> old_nir),
    person_id  bigint REFERENCES person (id) ON DELETE SET NULL,
    import_id  bigint NOT NULL,
    at         timestamptz NOT NULL
);
-- The change feed says which number an account's person had before.
ALTER TABLE account_change ADD COLUMN replaced_nir text;
