-- Protected adults (SPEC's guardian_nir, for an adult): under tutelle the
-- representative receives the notices as for a minor; under curatelle the
-- person does (they act themselves, assisted).
ALTER TABLE person ADD COLUMN protection text CHECK (protection IN ('tutelle', 'curatelle'));
ALTER TABLE registry_stage ADD COLUMN protection text;
ALTER TABLE registry_reject DROP CONSTRAINT registry_reject_reason_check,
    ADD CONSTRAINT registry_reject_reason_check CHECK (reason IN ('column_count', 'encoding', 'nir_format', 'nir_key',
        'nir_birth_mismatch', 'birth_date', 'duplicate_nir', 'no_channel', 'address_too_long', 'minor_without_guardian',
        'death_date', 'name_missing', 'protection_invalid', 'protected_without_guardian'));
