-- The embedded bus: an append-only log of messages and each consumer's position in it.
CREATE TABLE bus_messages (
    seq        BIGINT PRIMARY KEY,
    topic      TEXT   NOT NULL,
    msg_key    TEXT   NOT NULL,
    msg_id     TEXT   NOT NULL,
    payload    TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX bus_messages_id ON bus_messages (msg_id);
CREATE INDEX bus_messages_topic ON bus_messages (topic, seq);

CREATE TABLE bus_offsets (
    consumer   TEXT   NOT NULL,
    selection  TEXT   NOT NULL,
    acked      BIGINT NOT NULL,
    PRIMARY KEY (consumer, selection)
);
