-- What a launch selected by the wave's criteria, and why those it did not
-- create an account for were left out, saved with each checkpoint: ens
-- reconcile proves selected = created + excluded.
ALTER TABLE wave
    ADD COLUMN selected_count     bigint NOT NULL DEFAULT 0,
    ADD COLUMN excluded_deceased  bigint NOT NULL DEFAULT 0,
    ADD COLUMN excluded_enrolled  bigint NOT NULL DEFAULT 0;
