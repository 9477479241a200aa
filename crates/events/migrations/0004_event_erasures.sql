-- Erasures of a customer's events (GDPR). The rows are deleted from `events` and
-- `dead_letters`; this keeps which customer ids were forgotten and when, so a node restoring
-- a feature snapshot taken before an erasure forgets them again before it replays the log.
-- Rows older than the features' 90-day horizon are pruned at the next erasure.
CREATE TABLE event_erasures (
    id        TEXT   PRIMARY KEY,
    subjects  TEXT   NOT NULL,
    erased_at BIGINT NOT NULL
);
CREATE INDEX event_erasures_time ON event_erasures (erased_at);
