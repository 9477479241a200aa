-- The relay marks outbox rows it has handed to the event bus.
ALTER TABLE catalog_outbox ADD COLUMN published_at BIGINT;
CREATE INDEX catalog_outbox_unpublished ON catalog_outbox (published_at, id);
