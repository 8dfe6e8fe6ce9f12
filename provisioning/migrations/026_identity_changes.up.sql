-- A known NIR with another birth date is refused (identity_conflict): an
-- identity change is an operator's decision, never an update.
ALTER TABLE registry_reject DROP CONSTRAINT registry_reject_reason_check,
    ADD CONSTRAINT registry_reject_reason_check CHECK (reason IN ('column_count', 'encoding', 'nir_format', 'nir_key',
        'nir_birth_mismatch', 'birth_date', 'duplicate_nir', 'no_channel', 'address_too_long', 'minor_without_guardian',
        'death_date', 'name_missing', 'protection_invalid', 'protected_without_guardian', 'identity_conflict'));
