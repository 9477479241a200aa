-- Erasure records name customers by pseudonym from now on (never in clear). The records written
-- before named them in clear; they existed to make older feature snapshots forget, and those
-- snapshots are dropped by the features migration of the same release, so the records go too.
DELETE FROM event_erasures;
