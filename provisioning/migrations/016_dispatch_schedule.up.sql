-- A wave's dispatch can start later than its launch (start_at) and be
-- spread over days (per_day notices a day at most).
ALTER TABLE wave ADD COLUMN per_day bigint CHECK (per_day > 0), ADD COLUMN start_at timestamptz;
