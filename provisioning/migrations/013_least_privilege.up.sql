-- Least privilege: every command but `ens migrate` runs as an application
-- role that owns nothing and may not change the schema (see roles.go). What
-- the registry import did with DDL is done here once, or by two functions
-- that run with their owner's rights and do exactly one thing each.

-- The import's staging table, created once and emptied by each import
-- (imports are serialised), instead of created and dropped by each.
CREATE UNLOGGED TABLE registry_stage (
    line bigint, reason text, maybe_dup boolean, nir_masked text, nir text COLLATE "C", sex smallint,
    last_name text, first_name text, birth_date date, email text, address_line2 text, address_line3 text,
    address_line4 text, address_line5 text, postcode text, city text, country text, guardian_nir text,
    death_date date, department text);

-- Statistics for the joins after the COPY: only the owner may ANALYZE.
CREATE FUNCTION ens_analyze_stage() RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp AS $$
BEGIN
    ANALYZE registry_stage (nir, reason, maybe_dup);
END $$;

-- The first load into an empty person table drops the NIR index and builds
-- it once at the end; only the owner may alter the table.
CREATE FUNCTION ens_person_nir_key(present boolean) RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp AS $$
BEGIN
    IF present THEN
        SET LOCAL maintenance_work_mem = '512MB';
        ALTER TABLE person ADD CONSTRAINT person_nir_key UNIQUE (nir);
    ELSE
        ALTER TABLE person DROP CONSTRAINT person_nir_key;
    END IF;
END $$;
REVOKE ALL ON FUNCTION ens_analyze_stage(), ens_person_nir_key(boolean) FROM PUBLIC;

-- The audit chain is an HMAC under ENS_AUDIT_KEY, kept outside the database,
-- for the events written with the key; the events before it stay plain
-- SHA-256 and verify as such.
ALTER TABLE audit_event ADD COLUMN keyed boolean NOT NULL DEFAULT false;
