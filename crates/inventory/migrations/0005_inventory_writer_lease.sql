-- The writer's lease: which node's writer applies the ledger's batches when several nodes share
-- the database (the others forward their requests to it). It routes writes and guards nothing:
-- the journal head's compare-and-set and the balance guards still keep two writers correct.
CREATE TABLE inventory_writer_lease (
    shard TEXT PRIMARY KEY,
    node_id TEXT NOT NULL,
    url TEXT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    term BIGINT NOT NULL
);
