CREATE TABLE idempotency_keys (
    scope        TEXT   NOT NULL,
    idem_key     TEXT   NOT NULL,
    request_hash TEXT   NOT NULL,
    resource_id  TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (scope, idem_key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
