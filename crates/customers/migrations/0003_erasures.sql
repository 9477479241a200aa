-- Erasure requests (GDPR art. 17) and their progress. `subject` is the customer's ids, sealed
-- under the deployment's erasure key while the erasure runs, and cleared once it completed.
CREATE TABLE customer_erasures (
    id           TEXT   PRIMARY KEY,
    subject      TEXT,
    status       TEXT   NOT NULL,
    requested_by TEXT   NOT NULL,
    requested_at BIGINT NOT NULL,
    completed_at BIGINT,
    error        TEXT
);
CREATE INDEX customer_erasures_status ON customer_erasures (status, id);
