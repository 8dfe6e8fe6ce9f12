-- The holder's right to express deletion (R1111-36): purged within three
-- months instead of kept ten years. retain_until is then the purge's due date.
ALTER TABLE archive ADD COLUMN express boolean NOT NULL DEFAULT false;
