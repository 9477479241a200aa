-- Experiments: the definition as JSON (what `Definition` reads back), its status and times.
CREATE TABLE feedback_experiments (
    key         TEXT    PRIMARY KEY,
    status      TEXT    NOT NULL,
    namespace   TEXT,
    body        TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    started_at  BIGINT,
    stopped_at  BIGINT
);

-- Sticky assignments: an id (a pseudonym of a user id or an anonymous id, never the id itself)
-- keeps its variant; ids of one visitor (an anonymous id, then the user id after login) share
-- one unit.
CREATE TABLE feedback_assignments (
    experiment  TEXT    NOT NULL,
    id_key      TEXT    NOT NULL,
    unit_key    TEXT    NOT NULL,
    variant     BIGINT  NOT NULL,
    assigned_at BIGINT  NOT NULL,
    PRIMARY KEY (experiment, id_key)
);

-- Per unit (visitor) and experiment: exposure and the outcomes attributed to it afterwards.
CREATE TABLE feedback_units (
    experiment     TEXT    NOT NULL,
    unit_key       TEXT    NOT NULL,
    variant        BIGINT  NOT NULL,
    exposed_at     BIGINT  NOT NULL,
    clicks         BIGINT  NOT NULL DEFAULT 0,
    add_to_carts   BIGINT  NOT NULL DEFAULT 0,
    conversions    BIGINT  NOT NULL DEFAULT 0,
    revenue        DOUBLE PRECISION NOT NULL DEFAULT 0,
    returns        BIGINT  NOT NULL DEFAULT 0,
    reactions      BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (experiment, unit_key)
);
CREATE INDEX feedback_units_variant ON feedback_units (experiment, variant);

-- Messages already counted (a retried ingestion brings its duplicates again).
CREATE TABLE feedback_seen (
    message_key TEXT   PRIMARY KEY,
    seen_at     BIGINT NOT NULL
);
