-- The deterministic identity graph. Identifiers (email, phone, loyalty number, customer number,
-- user id, anonymous id, device id, POS receipt id) are the keyed hashes of `customer_lookups`,
-- each linked to one customer; `linked_at` orders a customer's identifiers of one kind (the
-- oldest goes first when a per-kind limit is reached) and `source` says what linked it.
ALTER TABLE customer_lookups ADD COLUMN linked_at BIGINT;
ALTER TABLE customer_lookups ADD COLUMN source TEXT;

-- A customer merged into another: requests naming it are answered by the winner until an
-- unmerge clears this.
ALTER TABLE customers ADD COLUMN merged_into TEXT;

-- Which customers an identifier was seen with (one row per pair): an identifier seen with more
-- customers than the configured bound (a shared in-store tablet) is blocked.
CREATE TABLE customer_identity_sightings (
    kind        TEXT   NOT NULL,
    hash        TEXT   NOT NULL,
    customer_id TEXT   NOT NULL,
    seen_at     BIGINT NOT NULL,
    PRIMARY KEY (kind, hash, customer_id)
);
CREATE INDEX customer_identity_sightings_customer ON customer_identity_sightings (customer_id);

-- Identifiers that never link or merge anyone (configured values are checked in memory; these
-- are the ones blocked automatically).
CREATE TABLE customer_identity_blocks (
    kind       TEXT   NOT NULL,
    hash       TEXT   NOT NULL,
    reason     TEXT   NOT NULL,
    blocked_at BIGINT NOT NULL,
    PRIMARY KEY (kind, hash)
);

-- Merges, reversible: `identifiers` is the JSON list of [kind, hash] moved from the loser to the
-- winner, `filled` the JSON list of the winner's profile fields the loser's values filled.
CREATE TABLE customer_merges (
    id          TEXT   PRIMARY KEY,
    winner      TEXT   NOT NULL,
    loser       TEXT   NOT NULL,
    identifiers TEXT   NOT NULL,
    filled      TEXT   NOT NULL,
    reason      TEXT   NOT NULL,
    merged_at   BIGINT NOT NULL,
    unmerged_at BIGINT
);
CREATE INDEX customer_merges_winner ON customer_merges (winner, id);
CREATE INDEX customer_merges_loser ON customer_merges (loser, id);

-- Ingested messages the identity graph applied (idempotence of the feed: the hook, this node's
-- consumer and every other node's may each see a message).
CREATE TABLE customer_identity_applied (
    write_key_id TEXT   NOT NULL,
    message_id   TEXT   NOT NULL,
    applied_at   BIGINT NOT NULL,
    PRIMARY KEY (write_key_id, message_id)
);
