-- The key of customers' pseudonyms (see pseudonym.rs), shared by every node of the deployment.
-- It was the feature store's (`feature_keys`); the features domain hands its row over in its
-- own next migration.
CREATE TABLE pseudonym_keys (
    name TEXT PRIMARY KEY,
    secret TEXT NOT NULL
);
