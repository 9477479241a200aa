-- PostgreSQL keeps its text event ids (several nodes insert concurrently, so no single writer
-- can issue ordered integer keys): this version changes only the SQLite layout.
SELECT 1;
