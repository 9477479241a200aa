-- How far the journal has been handed to the bus (`inventory.movement` messages): the outbox
-- relay publishes movements after `relayed_through` and then moves it.
CREATE TABLE inventory_relay (
    id               BIGINT PRIMARY KEY CHECK (id = 1),
    relayed_through  BIGINT NOT NULL
);
INSERT INTO inventory_relay (id, relayed_through) VALUES (1, 0);

-- Subscriptions to a channel's availability: a signed POST to `url` when a SKU's stock changes.
CREATE TABLE inventory_webhooks (
    id          TEXT    PRIMARY KEY,
    url         TEXT    NOT NULL,
    channels    TEXT    NOT NULL,
    secret      TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    active      BIGINT  NOT NULL
);

-- Deliveries: one row per subscription and SKU change (several nodes enqueueing the same change
-- make one row); claimed by one node at a time, retried with backoff, dead after the last try.
CREATE TABLE inventory_webhook_deliveries (
    id             TEXT    PRIMARY KEY,
    webhook_id     TEXT    NOT NULL,
    sku            TEXT    NOT NULL,
    sequence       BIGINT  NOT NULL,
    attempts       BIGINT  NOT NULL,
    next_at        BIGINT  NOT NULL,
    claimed_until  BIGINT  NOT NULL,
    status         TEXT    NOT NULL,
    last_error     TEXT,
    created_at     BIGINT  NOT NULL
);
CREATE INDEX inventory_webhook_deliveries_due ON inventory_webhook_deliveries (status, next_at);
