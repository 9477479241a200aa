-- Customers. Personal and health data only as ciphertexts (AES-256-GCM under the customer's
-- data key, base64): `contact` (name, email, phone, date of birth, address), `identifiers`
-- (user id, loyalty, external ids), `skin` (skin type, tone, concerns, lifestyle) and `health`
-- (conditions, sensitivities, allergies, pregnancy, breastfeeding).
CREATE TABLE customers (
    id          TEXT   PRIMARY KEY,
    contact     TEXT   NOT NULL,
    identifiers TEXT   NOT NULL,
    skin        TEXT,
    health      TEXT,
    version     BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- Data keys, wrapped by a master key (`master_key_id`). Deleting a row shreds the customer's
-- data. `owner` is a customer id, or `lookup` for the deployment's lookup-hash secret.
CREATE TABLE customer_keys (
    owner         TEXT   PRIMARY KEY,
    master_key_id TEXT   NOT NULL,
    wrapped       TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    rotated_at    BIGINT
);
CREATE INDEX customer_keys_master ON customer_keys (master_key_id, owner);

-- Keyed hashes (HMAC-SHA256) of lookup values: one customer per value and kind.
CREATE TABLE customer_lookups (
    kind        TEXT NOT NULL,
    hash        TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    PRIMARY KEY (kind, hash)
);
CREATE INDEX customer_lookups_customer ON customer_lookups (customer_id);

-- The consent ledger: append-only; the current state is the latest row per purpose.
CREATE TABLE consent_events (
    id           TEXT   PRIMARY KEY,
    customer_id  TEXT   NOT NULL,
    purpose      TEXT   NOT NULL,
    granted      BIGINT NOT NULL,
    text_version TEXT   NOT NULL,
    channel      TEXT   NOT NULL,
    actor        TEXT   NOT NULL,
    actor_role   TEXT   NOT NULL,
    recorded_at  BIGINT NOT NULL
);
CREATE INDEX consent_events_customer ON consent_events (customer_id, purpose, id);

-- Domain events (customer id and version, never personal data), relayed to the bus.
CREATE TABLE customers_outbox (
    id           TEXT   PRIMARY KEY,
    event_type   TEXT   NOT NULL,
    aggregate_id TEXT   NOT NULL,
    payload      TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    published_at BIGINT
);
CREATE INDEX customers_outbox_unpublished ON customers_outbox (published_at, id);
