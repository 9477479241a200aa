-- The orders domain's tables: one SQL text for SQLite and PostgreSQL (portable subset).
-- Stock is not here: every unit an order holds, commits, ships or takes back is a movement in the
-- inventory ledger, under the reservation `reservation_id` and the reference `order:ID`.
-- Lines are JSON arrays of {sku_id, product_id, quantity, unit_price_minor, currency}.

-- Carts: what a customer or an associate is putting together, before any stock is held.
CREATE TABLE carts (
    id          TEXT   PRIMARY KEY,
    channel     TEXT   NOT NULL,
    customer_id TEXT,
    location_id TEXT,
    lines       TEXT   NOT NULL,
    status      TEXT   NOT NULL CHECK (status IN ('open', 'checked_out')),
    order_id    TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    version     BIGINT NOT NULL
);
CREATE INDEX carts_customer ON carts (customer_id);

-- Orders: the sales record. `customer_id` is NULL for anonymous orders and after the customer's
-- erasure; lines, amounts and channel stay. `status` is what the last transition left; a checkout
-- whose hold has expired in the ledger reads as `expired`.
CREATE TABLE orders (
    id             TEXT   PRIMARY KEY,
    status         TEXT   NOT NULL CHECK (status IN ('checkout', 'placed', 'partially_fulfilled', 'fulfilled',
                                                     'partially_returned', 'returned', 'cancelled')),
    channel        TEXT   NOT NULL,
    external_id    TEXT,
    cart_id        TEXT,
    customer_id    TEXT,
    location_id    TEXT,
    reservation_id TEXT   NOT NULL,
    lines          TEXT   NOT NULL,
    total_minor    BIGINT NOT NULL,
    currency       TEXT   NOT NULL,
    payment_status TEXT   NOT NULL,
    expires_at     BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    version        BIGINT NOT NULL
);
CREATE UNIQUE INDEX orders_external ON orders (channel, external_id);
CREATE UNIQUE INDEX orders_cart ON orders (cart_id);
CREATE INDEX orders_customer ON orders (customer_id, id);

-- Payment provider callbacks, once per (order, provider reference, event). No card data: the
-- route refuses any other field.
CREATE TABLE order_payments (
    order_id           TEXT   NOT NULL,
    provider_reference TEXT   NOT NULL,
    event              TEXT   NOT NULL CHECK (event IN ('authorized', 'captured', 'failed', 'refunded')),
    amount_minor       BIGINT NOT NULL,
    currency           TEXT   NOT NULL,
    received_at        BIGINT NOT NULL,
    PRIMARY KEY (order_id, provider_reference, event)
);

-- Shipments and returns of an order, one row per ledger command (`command_key`), with the units
-- per SKU, location and lot as JSON [{sku_id, location_id, lot, quantity}].
CREATE TABLE order_movements (
    order_id    TEXT   NOT NULL,
    command_key TEXT   NOT NULL,
    kind        TEXT   NOT NULL CHECK (kind IN ('fulfillment', 'return')),
    location_id TEXT,
    lines       TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (order_id, command_key)
);
