-- 0003: what a training run ended with. `error` is the one line a failed or cancelled run shows (with the path
-- of the worker log), `result` the summary the Train tab and the CLI print (steps, final metrics, warnings,
-- snapshot sizes, reference-cache hits). Both are written once, when the run is ingested.
ALTER TABLE runs ADD COLUMN error VARCHAR;
ALTER TABLE runs ADD COLUMN result JSON;
