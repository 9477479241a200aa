-- What ingestion hands to the event bus: one row per ingestion request that stored messages,
-- written in the same transaction as the log rows, so nothing acknowledged misses the bus. The
-- relay publishes a row (its id is the bus message id) and then deletes it: the event log
-- itself is the record.
CREATE TABLE events_outbox (
    id         TEXT   PRIMARY KEY,
    payload    TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);
