-- Snapshots of a node's in-memory online features (derived state: losing one costs a longer
-- replay of the event log at start, nothing else). One row per node.
CREATE TABLE feature_snapshots (
    node_id  TEXT   PRIMARY KEY,
    taken_at BIGINT NOT NULL,
    body     TEXT   NOT NULL
);
