CREATE TABLE products (
    id               TEXT   PRIMARY KEY,
    external_id      TEXT,
    name             TEXT   NOT NULL,
    brand            TEXT   NOT NULL,
    category         TEXT,
    description      TEXT,
    ingredients      TEXT,
    status           TEXT   NOT NULL,
    version          BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE UNIQUE INDEX products_external_id ON products (external_id);
CREATE INDEX products_brand ON products (brand, id);
CREATE INDEX products_category ON products (category, id);

CREATE TABLE skus (
    id          TEXT   PRIMARY KEY,
    product_id  TEXT   NOT NULL REFERENCES products (id),
    code        TEXT   NOT NULL,
    barcode     TEXT,
    shade       TEXT,
    size        TEXT,
    scent       TEXT,
    formula     TEXT,
    price_minor BIGINT NOT NULL,
    currency    TEXT   NOT NULL,
    status      TEXT   NOT NULL,
    version     BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX skus_code ON skus (code);
CREATE UNIQUE INDEX skus_barcode ON skus (barcode);
CREATE INDEX skus_product ON skus (product_id, id);

-- Domain events, written in the transaction of the change; relayed to the event bus.
CREATE TABLE catalog_outbox (
    id           TEXT   PRIMARY KEY,
    event_type   TEXT   NOT NULL,
    aggregate_id TEXT   NOT NULL,
    payload      TEXT   NOT NULL,
    created_at   BIGINT NOT NULL
);
