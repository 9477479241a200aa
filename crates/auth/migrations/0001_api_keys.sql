CREATE TABLE api_keys (
    id          TEXT   PRIMARY KEY,
    name        TEXT   NOT NULL,
    role        TEXT   NOT NULL,
    store_id    TEXT,
    channel     TEXT,
    secret_hash TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
