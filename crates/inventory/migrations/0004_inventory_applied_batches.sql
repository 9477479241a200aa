-- Where each applied command was committed: the batch (the head's `batches` counter after it) and
-- its place in that batch. A process sharing the database whose ledger is behind (another process
-- committed since) catches up by replaying the batches after the last one it knows, instead of
-- reloading the whole journal. Commands stored before this column have NULL here; a process that
-- would need them reloads instead.
ALTER TABLE inventory_applied ADD COLUMN batch BIGINT;
ALTER TABLE inventory_applied ADD COLUMN batch_index BIGINT;
CREATE INDEX inventory_applied_batch ON inventory_applied (batch, batch_index);

-- The setup's version, moved by every save: a process catching up reloads when it changed.
ALTER TABLE inventory_setup ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
