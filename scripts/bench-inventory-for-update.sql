-- The classic reservation: lock the SKU's stock row, check, decrement, record the hold, commit.
-- pgbench sets :skus (1 for one hot SKU, 10000 for a spread); each transaction reserves one unit
-- of a random SKU among them. The guarded UPDATE never lets available go below zero, and the
-- reservation row is inserted only when the UPDATE took a unit (INSERT ... SELECT ... WHERE the
-- decrement happened), so a hold is recorded if and only if stock was taken.
\set sku random(1, :skus)
BEGIN;
SELECT available FROM stock WHERE sku = :sku FOR UPDATE;
WITH taken AS (
    UPDATE stock SET available = available - 1 WHERE sku = :sku AND available > 0 RETURNING sku
)
INSERT INTO reservations (sku, client, quantity, created_at)
SELECT sku, :client_id, 1, now() FROM taken;
COMMIT;
