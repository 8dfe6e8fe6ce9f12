-- An operator steers a wave: pause and resume its dispatch, or cancel what
-- has not gone out yet.
ALTER TABLE wave ADD COLUMN paused_at timestamptz, ADD COLUMN cancelled_at timestamptz;
