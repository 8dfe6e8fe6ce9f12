-- A wave's outstanding River jobs, found by the wave whatever the jobs it
-- has finished. Every letter render looks for its wave's notice chunks still
-- to work (every 200 ms while it waits), and every chunk for the renders
-- already queued. Searched by their arguments (River's GIN index), each look
-- read every job of the wave, finished ones included: 1.4 ms on a
-- 1,000,000-person wave, 8.7 ms on 5,000,000 — 13% of PostgreSQL's CPU on the
-- larger. This index holds only the jobs still outstanding (the states of
-- uniqueWhileOutstanding, jobs/client.go), so a look reads a few entries at
-- any size.
CREATE INDEX river_job_outstanding_by_wave_idx ON river_job (kind, (args->>'wave_id'))
    WHERE state IN ('available', 'pending', 'scheduled', 'running', 'retryable');
