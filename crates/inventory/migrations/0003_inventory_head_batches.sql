-- Batches committed so far. Every batch moves it by one in the same compare-and-set as the
-- journal's head, so a batch that writes no movement (a hold's new deadline) fences a writer that
-- has not seen it as well as one that moves stock does.
ALTER TABLE inventory_head ADD COLUMN batches BIGINT NOT NULL DEFAULT 0;
