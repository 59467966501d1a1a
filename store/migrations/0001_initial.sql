-- 0001_initial: PrefLab's whole data model (DESIGN.md, "Data model").
-- NEVER EDIT THIS FILE once applied anywhere: the store refuses to open a database whose
-- applied migrations changed. Add store/migrations/0002_<name>.sql instead.
--
-- Conventions
--  * Integer ids come from one sequence per table (DuckDB has no SERIAL).
--  * JSON columns are DuckDB JSON; timestamps default to the transaction's start time, so
--    "latest" always breaks ties on the id as well.
--  * Enum-like columns are VARCHAR + CHECK: readable in exports, and extendable by a migration.
--  * `order` is a reserved word: the judge's presentation order column is `position_order`.
--  * Foreign keys: DuckDB turns an UPDATE of an indexed column into delete + insert, which fails
--    while another row references it. Updated columns here (models.fingerprint, runs.status,
--    jobs.progress, labels.superseded_by, assignments.released_at) are never indexed, and
--    labels.superseded_by carries no FK (a self-reference gains nothing and would tie undo to
--    DuckDB's FK limitations). `UPDATE ... RETURNING` on a referenced table trips the FK check
--    even for unindexed columns: update, then select. tests/store covers these updates.

CREATE SEQUENCE prompts_id_seq;
CREATE TABLE prompts (
    id           BIGINT PRIMARY KEY DEFAULT nextval('prompts_id_seq'),
    content_hash VARCHAR NOT NULL UNIQUE,            -- sha256 of the canonical messages JSON
    messages     JSON NOT NULL,                      -- chat messages [{role, content}, ...]
    source       VARCHAR NOT NULL,                   -- file, dataset or 'demo'
    split        VARCHAR NOT NULL CHECK (split IN ('train', 'heldout')),
    gold         JSON,                               -- reference answer(s), if any
    meta         JSON,
    created_at   TIMESTAMP DEFAULT current_timestamp
);

-- A variant is a base model plus ordered adapters; 'imported' stands for responses from a file.
CREATE SEQUENCE models_id_seq;
CREATE TABLE models (
    id          BIGINT PRIMARY KEY DEFAULT nextval('models_id_seq'),
    name        VARCHAR NOT NULL UNIQUE,
    base        VARCHAR NOT NULL,
    adapters    JSON NOT NULL DEFAULT '[]',
    kind        VARCHAR NOT NULL CHECK (kind IN ('base', 'sft', 'dpo', 'imported')),
    fingerprint VARCHAR,                             -- hash of the weights, keys ref_logps
    created_at  TIMESTAMP DEFAULT current_timestamp
);

CREATE SEQUENCE generations_id_seq;
CREATE TABLE generations (
    id         BIGINT PRIMARY KEY DEFAULT nextval('generations_id_seq'),
    prompt_id  BIGINT NOT NULL REFERENCES prompts (id),
    model_id   BIGINT NOT NULL REFERENCES models (id),
    params     JSON,                                 -- temperature, top_p, max_new_tokens, ...
    seed       BIGINT,
    text       VARCHAR NOT NULL,
    n_tokens   INTEGER,
    seconds    DOUBLE,
    created_at TIMESTAMP DEFAULT current_timestamp
);

CREATE SEQUENCE jobs_id_seq;
CREATE TABLE jobs (
    id         BIGINT PRIMARY KEY DEFAULT nextval('jobs_id_seq'),
    kind       VARCHAR NOT NULL CHECK (kind IN ('generate', 'judge', 'judge_batch', 'train', 'eval')),
    params     JSON,
    status     VARCHAR NOT NULL DEFAULT 'queued'
               CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    progress   BIGINT NOT NULL DEFAULT 0,
    total      BIGINT,
    error      VARCHAR,
    created_at TIMESTAMP DEFAULT current_timestamp,
    started_at TIMESTAMP,
    ended_at   TIMESTAMP
);

CREATE SEQUENCE pairs_id_seq;
CREATE TABLE pairs (
    id         BIGINT PRIMARY KEY DEFAULT nextval('pairs_id_seq'),
    prompt_id  BIGINT NOT NULL REFERENCES prompts (id),
    gen_a      BIGINT NOT NULL REFERENCES generations (id),
    gen_b      BIGINT NOT NULL REFERENCES generations (id),
    created_at TIMESTAMP DEFAULT current_timestamp,
    CHECK (gen_a <> gen_b),
    UNIQUE (gen_a, gen_b)
);

-- Who holds which pair. An assignment is live while released_at IS NULL and it has not expired
-- (the expiry is the service's setting, so it is not stored here).
CREATE SEQUENCE assignments_id_seq;
CREATE TABLE assignments (
    id          BIGINT PRIMARY KEY DEFAULT nextval('assignments_id_seq'),
    pair_id     BIGINT NOT NULL REFERENCES pairs (id),
    annotator   VARCHAR NOT NULL,
    assigned_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
    released_at TIMESTAMP
);

-- position_order: 'ab' showed gen_a first, 'ba' gen_b first; winner always names gen_a/gen_b.
CREATE SEQUENCE judge_verdicts_id_seq;
CREATE TABLE judge_verdicts (
    id             BIGINT PRIMARY KEY DEFAULT nextval('judge_verdicts_id_seq'),
    pair_id        BIGINT NOT NULL REFERENCES pairs (id),
    judge          VARCHAR NOT NULL,                 -- 'anthropic', 'rule', ...
    model          VARCHAR,
    rubric_hash    VARCHAR,
    position_order VARCHAR NOT NULL CHECK (position_order IN ('ab', 'ba')),
    winner         VARCHAR CHECK (winner IN ('a', 'b', 'tie', 'both_bad')),
    rationale      VARCHAR,
    confidence     DOUBLE CHECK (confidence BETWEEN 0 AND 1),
    usage          JSON,
    batch_id       VARCHAR,                          -- Message Batches id, if batched
    created_at     TIMESTAMP DEFAULT current_timestamp
);

-- decision names gen_a/gen_b, never screen sides (left_gen/right_gen record what was shown).
-- Nothing is deleted: a re-vote or undo sets superseded_by on the old row (to the new label's
-- id, or to the row's own id when an undo withdraws it with no replacement).
CREATE SEQUENCE labels_id_seq;
CREATE TABLE labels (
    id               BIGINT PRIMARY KEY DEFAULT nextval('labels_id_seq'),
    pair_id          BIGINT NOT NULL REFERENCES pairs (id),
    annotator        VARCHAR NOT NULL,
    source           VARCHAR NOT NULL CHECK (source IN ('human', 'judge', 'import')),
    left_gen         BIGINT REFERENCES generations (id),
    right_gen        BIGINT REFERENCES generations (id),
    seed             BIGINT,                         -- the recorded seed that chose the sides
    decision         VARCHAR NOT NULL CHECK (decision IN ('a', 'b', 'tie', 'both_bad', 'skip')),
    suggestion_shown BOOLEAN NOT NULL DEFAULT false,
    suggestion       VARCHAR CHECK (suggestion IN ('a', 'b', 'tie', 'both_bad')),
    chosen_edit      VARCHAR,                        -- the annotator's rewrite of the chosen text
    note             VARCHAR,
    seconds_spent    DOUBLE,
    superseded_by    BIGINT,                         -- labels.id; no FK on purpose (see header)
    created_at       TIMESTAMP DEFAULT current_timestamp
);

-- model_id is the policy's starting variant, ref_model_id the DPO reference.
CREATE SEQUENCE runs_id_seq;
CREATE TABLE runs (
    id           BIGINT PRIMARY KEY DEFAULT nextval('runs_id_seq'),
    kind         VARCHAR NOT NULL CHECK (kind IN ('sft', 'dpo')),
    config       JSON,
    dataset_hash VARCHAR,
    model_id     BIGINT REFERENCES models (id),
    ref_model_id BIGINT REFERENCES models (id),
    status       VARCHAR NOT NULL DEFAULT 'queued'
                 CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    adapter_path VARCHAR,
    created_at   TIMESTAMP DEFAULT current_timestamp,
    started_at   TIMESTAMP,
    ended_at     TIMESTAMP
);

CREATE TABLE run_metrics (
    run_id BIGINT NOT NULL REFERENCES runs (id),
    step   BIGINT NOT NULL,
    split  VARCHAR NOT NULL CHECK (split IN ('train', 'eval')),
    name   VARCHAR NOT NULL,
    value  DOUBLE,
    PRIMARY KEY (run_id, step, split, name)
);

-- The reference log-prob cache: a key names everything the log-prob depends on.
CREATE TABLE ref_logps (
    model_fingerprint VARCHAR NOT NULL,
    template_hash     VARCHAR NOT NULL,
    max_length        INTEGER NOT NULL,
    truncation_mode   VARCHAR NOT NULL,
    prompt_hash       VARCHAR NOT NULL,
    response_hash     VARCHAR NOT NULL,
    logp              DOUBLE NOT NULL,
    PRIMARY KEY (model_fingerprint, template_hash, max_length, truncation_mode, prompt_hash, response_hash)
);

-- A blind arena vote; vote names screen sides, left_gen/right_gen say what they were.
CREATE SEQUENCE battles_id_seq;
CREATE TABLE battles (
    id         BIGINT PRIMARY KEY DEFAULT nextval('battles_id_seq'),
    prompt_id  BIGINT NOT NULL REFERENCES prompts (id),
    left_gen   BIGINT NOT NULL REFERENCES generations (id),
    right_gen  BIGINT NOT NULL REFERENCES generations (id),
    seed       BIGINT,
    voter      VARCHAR NOT NULL,
    vote       VARCHAR NOT NULL CHECK (vote IN ('left', 'right', 'tie', 'both_bad')),
    created_at TIMESTAMP DEFAULT current_timestamp
);

CREATE SEQUENCE eval_runs_id_seq;
CREATE TABLE eval_runs (
    id         BIGINT PRIMARY KEY DEFAULT nextval('eval_runs_id_seq'),
    variants   JSON NOT NULL,                        -- variant names, in display order
    prompt_set VARCHAR NOT NULL,                     -- 'heldout', ...
    config     JSON,
    created_at TIMESTAMP DEFAULT current_timestamp
);

CREATE TABLE eval_scores (
    eval_run_id BIGINT NOT NULL REFERENCES eval_runs (id),
    prompt_id   BIGINT NOT NULL REFERENCES prompts (id),
    model_id    BIGINT NOT NULL REFERENCES models (id),
    scorer      VARCHAR NOT NULL,
    value       DOUBLE,
    PRIMARY KEY (eval_run_id, prompt_id, model_id, scorer)
);

-- The training data: per pair and annotator, the latest label that is neither superseded nor a
-- skip. 'tie' and 'both_bad' stay (chosen = gen_a, rejected = gen_b) with their decision, so a
-- training policy decides whether to drop them. chosen is the annotator's edit when there is one.
CREATE VIEW preference_triples AS
WITH live AS (
    SELECT
        l.*,
        row_number() OVER (
            PARTITION BY l.pair_id, l.annotator ORDER BY l.created_at DESC, l.id DESC
        ) AS recency
    FROM labels AS l
    WHERE l.superseded_by IS NULL AND l.decision <> 'skip'
)
SELECT
    live.id AS label_id,
    live.pair_id,
    pairs.prompt_id,
    prompts.split,
    prompts.messages AS prompt,
    coalesce(live.chosen_edit, CASE WHEN live.decision = 'b' THEN gb.text ELSE ga.text END) AS chosen,
    CASE WHEN live.decision = 'b' THEN ga.text ELSE gb.text END AS rejected,
    CASE WHEN live.decision = 'b' THEN gb.id ELSE ga.id END AS chosen_gen,
    CASE WHEN live.decision = 'b' THEN ga.id ELSE gb.id END AS rejected_gen,
    live.chosen_edit IS NOT NULL AS edited,
    live.source,
    live.annotator,
    live.decision,
    live.created_at
FROM live
JOIN pairs ON pairs.id = live.pair_id
JOIN prompts ON prompts.id = pairs.prompt_id
JOIN generations AS ga ON ga.id = pairs.gen_a
JOIN generations AS gb ON gb.id = pairs.gen_b
WHERE live.recency = 1;
