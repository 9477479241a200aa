-- The inventory ledger's store: one SQL text for SQLite and PostgreSQL (portable subset).
-- JSON bodies are the records exactly as the ledger wrote them (what `Ledger::restore` reads back);
-- the columns beside them are for indexes, constraints and people reading the tables.

-- The setup (SKUs, kits, locations, channel policies) as one JSON document; one row, id 1.
CREATE TABLE inventory_setup (
    id         BIGINT PRIMARY KEY CHECK (id = 1),
    body       TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);

-- The journal's head: the id of the last movement. Every batch moves it from the value its writer
-- read to the new one (a compare-and-set), so a writer whose in-memory ledger is stale (another
-- process wrote since) has its batch refused instead of overwriting newer records.
CREATE TABLE inventory_head (
    id            BIGINT PRIMARY KEY CHECK (id = 1),
    last_movement BIGINT NOT NULL
);
INSERT INTO inventory_head (id, last_movement) VALUES (1, 0);

-- The journal: every movement, dense ids from 1, a dense sequence per SKU, never updated.
CREATE TABLE inventory_movements (
    id              BIGINT PRIMARY KEY,
    sku             TEXT   NOT NULL,
    sku_seq         BIGINT NOT NULL,
    idempotency_key TEXT   NOT NULL,
    lot             TEXT,
    reason          TEXT   NOT NULL,
    reservation_id  TEXT,
    quantity        BIGINT NOT NULL CHECK (quantity > 0),
    at_ms           BIGINT NOT NULL,
    body            TEXT   NOT NULL
);
CREATE UNIQUE INDEX inventory_movements_idempotency ON inventory_movements (idempotency_key);
CREATE UNIQUE INDEX inventory_movements_sku_seq ON inventory_movements (sku, sku_seq);
CREATE INDEX inventory_movements_lot ON inventory_movements (sku, lot, id);

-- Balances, the projection of the journal: one row per (SKU, account, lot). `balance_key` is the
-- key as canonical JSON; `location` is NULL for the external accounts, whose name is in `state`.
-- Only the supplier and shrinkage accounts may go below zero.
CREATE TABLE inventory_balances (
    balance_key TEXT   PRIMARY KEY,
    sku         TEXT   NOT NULL,
    location    TEXT,
    state       TEXT   NOT NULL,
    lot         TEXT,
    quantity    BIGINT NOT NULL,
    CONSTRAINT inventory_balances_not_negative
        CHECK (quantity >= 0 OR (location IS NULL AND state IN ('supplier', 'shrinkage')))
);
CREATE INDEX inventory_balances_sku ON inventory_balances (sku);

-- Lots as registered on their first receipt.
CREATE TABLE inventory_lots (
    sku        TEXT   NOT NULL,
    code       TEXT   NOT NULL,
    expires_on BIGINT NOT NULL,
    body       TEXT   NOT NULL,
    PRIMARY KEY (sku, code)
);

-- Reservations in any status (cart holds and the orders they became).
CREATE TABLE inventory_reservations (
    id            TEXT   PRIMARY KEY,
    channel       TEXT   NOT NULL,
    status        TEXT   NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    body          TEXT   NOT NULL
);
CREATE INDEX inventory_reservations_status ON inventory_reservations (status, expires_at_ms);

-- Transfers between locations.
CREATE TABLE inventory_transfers (
    id     TEXT PRIMARY KEY,
    sku    TEXT NOT NULL,
    status TEXT NOT NULL,
    body   TEXT NOT NULL
);

-- Purchase orders expected from suppliers.
CREATE TABLE inventory_purchase_orders (
    id       TEXT   PRIMARY KEY,
    location TEXT   NOT NULL,
    eta_ms   BIGINT NOT NULL,
    body     TEXT   NOT NULL
);

-- Applied commands by idempotency key: a repeat of the key answers the first outcome.
CREATE TABLE inventory_applied (
    idempotency_key TEXT   PRIMARY KEY,
    command         TEXT   NOT NULL,
    outcome         TEXT   NOT NULL,
    applied_at      BIGINT NOT NULL
);
