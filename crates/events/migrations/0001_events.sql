-- Write keys identify a source (web shop, app, POS connector). They are sent from browsers, so
-- they are identifiers rather than secrets; only their SHA-256 is stored all the same.
CREATE TABLE write_keys (
    id         TEXT   PRIMARY KEY,
    name       TEXT   NOT NULL,
    key_hash   TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE UNIQUE INDEX write_keys_hash ON write_keys (key_hash);

-- The event log: append-only. One customer's events are found (for export and erasure) through
-- the user-id and anonymous-id indexes; partition_key (the user id, else the anonymous id) is
-- what the bus and a future partitioned table key on. No index of its own: each index costs
-- about a fifth of the embedded insert rate.
CREATE TABLE events (
    id            TEXT   PRIMARY KEY,
    write_key_id  TEXT   NOT NULL,
    message_id    TEXT   NOT NULL,
    kind          TEXT   NOT NULL,
    event         TEXT,
    user_id       TEXT,
    anonymous_id  TEXT,
    partition_key TEXT   NOT NULL,
    schema_ref    TEXT,
    timestamp_ms  BIGINT NOT NULL,
    received_at   BIGINT NOT NULL,
    payload       TEXT   NOT NULL
);
CREATE UNIQUE INDEX events_message ON events (write_key_id, message_id);
CREATE INDEX events_user ON events (user_id, id);
CREATE INDEX events_anonymous ON events (anonymous_id, id);

-- Messages that failed validation, kept with the reason until replayed.
CREATE TABLE dead_letters (
    id           TEXT   PRIMARY KEY,
    write_key_id TEXT   NOT NULL,
    message_id   TEXT,
    reason       TEXT   NOT NULL,
    errors       TEXT   NOT NULL,
    payload      TEXT   NOT NULL,
    received_at  BIGINT NOT NULL,
    replayed_at  BIGINT
);
