-- Merge suggestions of probabilistic matching: customer ids, the score and the per-field
-- evidence (levels and weights, never values). A pair is suggested once; a dismissed or merged
-- pair is not suggested again.
CREATE TABLE customer_match_suggestions (
    id          TEXT PRIMARY KEY,
    a           TEXT NOT NULL,
    b           TEXT NOT NULL,
    score       DOUBLE PRECISION NOT NULL,
    probability DOUBLE PRECISION NOT NULL,
    decision    TEXT NOT NULL,
    evidence    TEXT NOT NULL,
    status      TEXT NOT NULL,
    merge_id    TEXT,
    created_at  BIGINT NOT NULL,
    decided_at  BIGINT,
    UNIQUE (a, b)
);
CREATE INDEX customer_match_suggestions_status ON customer_match_suggestions (status, score);
