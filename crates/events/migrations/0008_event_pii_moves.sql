-- The one-time rewrite of messages stored before the event log stopped keeping personal traits
-- (see `pii.rs`): how far it got through the log (`after_id`, an event id) and the dead letters
-- (`after_dead_letter`), and when it finished. One row.
CREATE TABLE event_pii_moves (
    one               INTEGER PRIMARY KEY,
    after_id          TEXT   NOT NULL,
    after_dead_letter TEXT   NOT NULL,
    moved             BIGINT NOT NULL,
    finished_at       BIGINT
);
