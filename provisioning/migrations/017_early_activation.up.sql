-- The holder may activate their account before the window ends, with their
-- code and birth date (the code is their proof of having been told).
ALTER TABLE account ADD COLUMN activated_by_holder boolean NOT NULL DEFAULT false;
