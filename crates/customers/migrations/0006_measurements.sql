-- Skin measurements from analyzers and wearables (`Skin Measurement Recorded`): a time series per
-- customer and metric. The metric and the times are in clear; the reading (value, unit, device)
-- is a ciphertext under the customer's data key, bound to the customer and the row.
CREATE TABLE customer_measurements (
    id           TEXT   PRIMARY KEY,
    customer_id  TEXT   NOT NULL,
    metric       TEXT   NOT NULL,
    measured_at  BIGINT NOT NULL,
    reading      TEXT   NOT NULL,
    write_key_id TEXT   NOT NULL,
    message_id   TEXT   NOT NULL,
    recorded_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX customer_measurements_message ON customer_measurements (write_key_id, message_id, metric);
CREATE INDEX customer_measurements_customer ON customer_measurements (customer_id, metric, measured_at);

-- Ingested messages the customers feed applied beyond the identity graph, per step
-- (`measurement`, `assessment`, `consent`): each counts once whichever node sees it.
CREATE TABLE customer_feed_applied (
    write_key_id TEXT   NOT NULL,
    message_id   TEXT   NOT NULL,
    step         TEXT   NOT NULL,
    applied_at   BIGINT NOT NULL,
    PRIMARY KEY (write_key_id, message_id, step)
);
CREATE INDEX customer_feed_applied_time ON customer_feed_applied (applied_at);
