-- The daily search for people told as minors who came of age reads the
-- year of birth dates it concerns, not the whole registry.
CREATE INDEX person_guardian_birth_idx ON person (birth_date) WHERE guardian_nir IS NOT NULL;
