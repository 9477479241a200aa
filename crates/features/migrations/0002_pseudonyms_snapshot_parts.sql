-- Customers are keyed by a keyed hash of their id from now on (see pseudonym.rs): snapshots
-- keyed by ids in clear are dropped (derived state: the next start rebuilds from the event log).
DELETE FROM feature_snapshots;

-- The key of the pseudonyms, shared by every node of the deployment.
CREATE TABLE feature_keys (
    name TEXT PRIMARY KEY,
    secret TEXT NOT NULL
);

-- A snapshot's body, in parts of about 1 MB, each written in a short transaction of its own;
-- feature_snapshots.taken_at names the complete one (its body is then empty).
CREATE TABLE feature_snapshot_parts (
    node_id  TEXT    NOT NULL,
    taken_at BIGINT  NOT NULL,
    seq      INTEGER NOT NULL,
    body     TEXT    NOT NULL,
    PRIMARY KEY (node_id, taken_at, seq)
);
