-- The audit log: append-only, hash-chained. Rows are only ever inserted; `audit_head` holds the
-- last entry's seq and hash, updated in the same transaction as each insert, so that deleting
-- the newest entries (truncation) is detected too.
CREATE TABLE audit_log (
    seq        BIGINT NOT NULL PRIMARY KEY,
    at         BIGINT NOT NULL,
    actor      TEXT   NOT NULL,
    role       TEXT   NOT NULL,
    purpose    TEXT   NOT NULL,
    request_id TEXT   NOT NULL,
    action     TEXT   NOT NULL,
    subject    TEXT,
    fields     TEXT   NOT NULL,
    prev_hash  TEXT   NOT NULL,
    hash       TEXT   NOT NULL
);

CREATE INDEX audit_log_subject ON audit_log (subject, seq);
CREATE INDEX audit_log_actor ON audit_log (actor, seq);

CREATE TABLE audit_head (
    id   BIGINT NOT NULL PRIMARY KEY,
    seq  BIGINT NOT NULL,
    hash TEXT   NOT NULL
);

INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
