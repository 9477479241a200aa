-- SQLite only: the customer index of the event log, written behind the log instead of with
-- every event. Each event used to insert into `events_user` (and `events_anonymous`) at its own
-- random leaf page, so nearly every event dirtied a 4 KB page of its own, written twice (to the
-- WAL, then by the checkpoint): about 3.5 KB of disk writes per event of 450 bytes, the embedded
-- log's sustained limit. Now an indexer thread reads the events stored after the watermark
-- (`events_indexed.through`) about once a second, sorts their customer ids and has the log's
-- writer insert them in slices: a leaf page is written about once per pass instead of once per
-- event (see embedded_log.rs). Reads of one customer's events (listing, erasure) use these
-- tables for the events up to `through` and scan the short tail after it.
CREATE TABLE events_by_user (
    user_id TEXT    NOT NULL,
    id      INTEGER NOT NULL,
    PRIMARY KEY (user_id, id)
) WITHOUT ROWID;
CREATE TABLE events_by_anonymous (
    anonymous_id TEXT    NOT NULL,
    id           INTEGER NOT NULL,
    PRIMARY KEY (anonymous_id, id)
) WITHOUT ROWID;
-- One row: every event with a key up to `through` is in the tables above. `issued`: the largest
-- key ever issued as far as an erasure saw (it deletes the newest events too); new keys are
-- issued above both, so no event is ever stored at or below the watermark, unindexed.
CREATE TABLE events_indexed (
    one     INTEGER PRIMARY KEY CHECK (one = 1),
    through INTEGER NOT NULL,
    issued  INTEGER NOT NULL DEFAULT 0
);
INSERT INTO events_by_user (user_id, id) SELECT user_id, id FROM events WHERE user_id IS NOT NULL ORDER BY 1, 2;
INSERT INTO events_by_anonymous (anonymous_id, id)
    SELECT anonymous_id, id FROM events WHERE anonymous_id IS NOT NULL ORDER BY 1, 2;
INSERT INTO events_indexed (one, through) VALUES (1, (SELECT COALESCE(MAX(id), 0) FROM events));
DROP INDEX events_user;
DROP INDEX events_anonymous;
