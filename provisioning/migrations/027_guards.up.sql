-- The NIR's uniqueness may be dropped only for a first load into an empty
-- person table: the application role calls this function, and must not be
-- able to make two people share a number.
CREATE OR REPLACE FUNCTION ens_person_nir_key(present boolean) RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp AS $$
BEGIN
    IF present THEN
        SET LOCAL maintenance_work_mem = '512MB';
        ALTER TABLE person ADD CONSTRAINT person_nir_key UNIQUE (nir);
    ELSIF EXISTS (SELECT 1 FROM person) THEN
        RAISE EXCEPTION 'the NIR''s uniqueness is dropped only for a first load into an empty person table';
    ELSE
        ALTER TABLE person DROP CONSTRAINT person_nir_key;
    END IF;
END $$;
REVOKE ALL ON FUNCTION ens_person_nir_key(boolean) FROM PUBLIC;
