-- 0005: arenas an admin opened ("Prepare responses") and may close. Battles are served only for an
-- open matchup, and while one is open the Eval tab's sample viewer withholds its variants' responses
-- on its prompt set (the arena and the eval share generation cells). The pair is stored low id first.
CREATE TABLE arena_matchups (
    model_lo   BIGINT NOT NULL REFERENCES models (id),
    model_hi   BIGINT NOT NULL REFERENCES models (id),
    prompt_set VARCHAR NOT NULL,
    opened_by  VARCHAR,
    opened_at  TIMESTAMP DEFAULT current_timestamp,
    closed_by  VARCHAR,
    closed_at  TIMESTAMP,
    PRIMARY KEY (model_lo, model_hi, prompt_set),
    CHECK (model_lo < model_hi)
);
