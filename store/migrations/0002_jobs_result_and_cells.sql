-- 0002: what a finished job reports (counts such as near-identical pairs skipped), and the
-- generation "cell" that makes generation jobs resumable: a cell names (prompt, sampling
-- setting, slot) for one variant, so a restarted job skips the cells it already stored.
ALTER TABLE jobs ADD COLUMN result JSON;
ALTER TABLE generations ADD COLUMN cell VARCHAR;
CREATE INDEX generations_model_cell ON generations (model_id, prompt_id, cell);
