#!/usr/bin/env bash
# The baseline of issue 15: the SELECT ... FOR UPDATE reservation as a pgbench script
# (scripts/bench-inventory-for-update.sql) on a scratch database of the local PostgreSQL.
#
#   scripts/bench-inventory-baseline.sh [SKUS] [CLIENTS] [SECONDS]
#
# SKUS 1 is one hot SKU, 10000 a spread (a random SKU per transaction). Prints one line:
#   baseline skus=N clients=C tx=T seconds=S tps=X p50_ms=A p99_ms=B max_ms=M oversold=0 held_ok=1
# p50/p99/max come from pgbench's per-transaction log (--log); `oversold` counts stock rows below
# zero and `held_ok` says whether the reservation rows equal the units taken from stock.
# Environment: PGHOST (127.0.0.1), PGPORT (5432), PGUSER (postgres), BENCH_DB (bench_inventory).
set -euo pipefail
SKUS=${1:-1}
CLIENTS=${2:-16}
SECONDS_=${3:-10}
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
DB=${BENCH_DB:-bench_inventory}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"; dropdb --if-exists --force "$DB" 2>/dev/null || true' EXIT
INITIAL=1000000000

dropdb --if-exists --force "$DB" 2>/dev/null || true
createdb "$DB"
psql -q -v ON_ERROR_STOP=1 -d "$DB" <<SQL
CREATE TABLE stock (
    sku       BIGINT PRIMARY KEY,
    available BIGINT NOT NULL CHECK (available >= 0)
);
CREATE TABLE reservations (
    id         BIGSERIAL PRIMARY KEY,
    sku        BIGINT NOT NULL REFERENCES stock (sku),
    client     INT    NOT NULL,
    quantity   BIGINT NOT NULL CHECK (quantity > 0),
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX reservations_sku ON reservations (sku);
INSERT INTO stock (sku, available) SELECT g, $INITIAL FROM generate_series(1, $SKUS) g;
VACUUM ANALYZE;
SQL

cd "$WORK"
pgbench -n -c "$CLIENTS" -j 2 -T "$SECONDS_" -D skus="$SKUS" --log --log-prefix=tx \
  -f "$HERE/bench-inventory-for-update.sql" "$DB" > pgbench.out 2> pgbench.err || {
  cat pgbench.err >&2; exit 1; }
# Per-transaction log: client tx_no latency_us script_no epoch epoch_us
cat tx.* | awk '{print $3}' | sort -n > lat.txt
TX=$(wc -l < lat.txt)
pct() { awk -v p="$1" -v n="$TX" 'NR == int((n - 1) * p) + 1 { printf "%.2f", $1 / 1000; exit }' lat.txt; }
MAX=$(tail -1 lat.txt | awk '{printf "%.2f", $1 / 1000}')
TPS=$(awk -v n="$TX" -v s="$SECONDS_" 'BEGIN { printf "%.0f", n / s }')
OVERSOLD=$(psql -Atd "$DB" -c "SELECT count(*) FROM stock WHERE available < 0")
HELD_OK=$(psql -Atd "$DB" -c "SELECT ((SELECT count(*) FROM reservations) = (SELECT sum($INITIAL - available) FROM stock))::int")
echo "baseline skus=$SKUS clients=$CLIENTS tx=$TX seconds=$SECONDS_ tps=$TPS p50_ms=$(pct 0.50) p99_ms=$(pct 0.99) max_ms=$MAX oversold=$OVERSOLD held_ok=$HELD_OK"
