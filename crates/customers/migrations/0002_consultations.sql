-- A store associate's consultation with a customer at their store: while it is open (until
-- `expires_at`, or `closed_at`), associates of that store read the customer's health facts.
CREATE TABLE customer_consultations (
    id          TEXT   PRIMARY KEY,
    customer_id TEXT   NOT NULL,
    store_id    TEXT   NOT NULL,
    opened_by   TEXT   NOT NULL,
    opened_at   BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    closed_at   BIGINT
);
CREATE INDEX customer_consultations_customer ON customer_consultations (customer_id, store_id, expires_at);
