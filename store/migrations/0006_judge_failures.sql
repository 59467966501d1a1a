-- 0006: a pair the judge failed on is remembered across votes and restarts: how often it failed,
-- the last error, and when it may be sent again (NULL: only an explicit `judge` run retries it).
-- `model` is '' for a judge without a model, since key columns cannot be NULL.
CREATE TABLE judge_failures (
    pair_id       BIGINT NOT NULL REFERENCES pairs (id),
    judge         VARCHAR NOT NULL,
    model         VARCHAR NOT NULL,
    rubric_hash   VARCHAR NOT NULL,
    attempts      INTEGER NOT NULL CHECK (attempts >= 1),
    error         VARCHAR NOT NULL,
    next_retry_at TIMESTAMP,
    updated_at    TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (pair_id, judge, model, rubric_hash)
);
