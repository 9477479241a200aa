-- Identifiers of erased customers (keyed hashes, as `customer_lookups`): events ingested later
-- that carry one of them are not applied to the identity graph (no customer is linked or
-- created again for that identity). Kept until a database administrator deletes the row: there
-- is no API that lifts a suppression.
CREATE TABLE customer_suppressions (
    kind          TEXT   NOT NULL,
    hash          TEXT   NOT NULL,
    suppressed_at BIGINT NOT NULL,
    PRIMARY KEY (kind, hash)
);
