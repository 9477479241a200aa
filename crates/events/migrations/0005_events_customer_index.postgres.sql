-- PostgreSQL keeps its customer indexes on `events` (`events_user`, `events_anonymous`): several
-- nodes insert concurrently and each commit is its own, so there is no single writer to index
-- the log behind it. This version changes only the SQLite layout.
SELECT 1;
