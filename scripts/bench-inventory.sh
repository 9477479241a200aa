#!/usr/bin/env bash
# Issue 15's figures in one go on one machine: reservations/s and latency of one-unit holds on one
# hot SKU and spread over 10,000 SKUs, for
#   - the baseline: SELECT ... FOR UPDATE as a pgbench script (scripts/bench-inventory-baseline.sh),
#   - Dermis on SQLite and Dermis on PostgreSQL (crates/inventory/examples/reserve_bench.rs),
# with the same number of clients (tasks), the same duration, on the same PostgreSQL. Every
# configuration runs RUNS times (interleaved); the table shows medians over the runs, and the
# ratio Dermis / baseline at the same SKU spread.
#
#   scripts/bench-inventory.sh            # RUNS=2 BENCH_SECONDS=10 CLIENTS=16
#   RUNS=3 BENCH_SECONDS=20 CLIENTS=64 scripts/bench-inventory.sh
#
# Needs cargo, pgbench/psql/createdb and a PostgreSQL reachable as PGHOST/PGPORT/PGUSER
# (127.0.0.1:5432, postgres) that may create and drop scratch databases. Release builds go to
# CARGO_TARGET_DIR (default /work/bench-target) so a debug target dir is left alone.
set -euo pipefail
RUNS=${RUNS:-2}
SECONDS_=${BENCH_SECONDS:-10}  # not SECONDS: bash keeps its own (seconds since the shell started)
CLIENTS=${CLIENTS:-16}
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/bench-target}
export DERMIS_BENCH_POSTGRES_URL=${DERMIS_BENCH_POSTGRES_URL:-postgres://$PGUSER@$PGHOST:$PGPORT/postgres}
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/.."

cargo build --release -q -p dermis-inventory --example reserve_bench
BIN=$CARGO_TARGET_DIR/release/examples/reserve_bench
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT

echo "# $(date -u +%FT%TZ) $(nproc) cores, $(uname -r); RUNS=$RUNS BENCH_SECONDS=$SECONDS_ CLIENTS=$CLIENTS" >&2
for run in $(seq 1 "$RUNS"); do
  for skus in 1 10000; do
    line=$("$HERE/bench-inventory-baseline.sh" "$skus" "$CLIENTS" "$SECONDS_")
    echo "$line" >&2; echo "$line" >> "$OUT"
  done
  for backend in sqlite postgres; do
    for skus in 1 10000; do
      line=$("$BIN" --backend "$backend" --skus "$skus" --tasks "$CLIENTS" --seconds "$SECONDS_")
      echo "$line" >&2; echo "$line" >> "$OUT"
    done
  done
done

# median KIND SKUS FIELD [FORMAT]: the median of FIELD over the runs of one configuration
median() {
  grep "^$1 " "$OUT" | grep " skus=$2 " | sed -n "s/.* $3=\([^ ]*\).*/\1/p" | sort -g |
    awk -v f="${4:-%.2f}" '{ v[NR] = $1 } END {
      if (NR == 0) { print "-"; exit }
      m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      printf f "\n", m }'
}
# Every run of every configuration must have passed its checks.
if grep -q "^dermis " "$OUT" && grep "^dermis " "$OUT" | grep -qv " ok=1"; then echo "a Dermis run failed its checks" >&2; exit 1; fi
if grep "^baseline " "$OUT" | grep -qv " oversold=0 held_ok=1"; then echo "a baseline run oversold" >&2; exit 1; fi

echo
echo "| setup | SKUs | reservations/s | p50 ms | p99 ms | max ms | × baseline | read p50 µs | read p99 µs |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for skus in 1 10000; do
  base=$(median baseline "$skus" tps %.0f)
  echo "| SELECT ... FOR UPDATE (pgbench) | $skus | $base | $(median baseline "$skus" p50_ms) | $(median baseline "$skus" p99_ms) | $(median baseline "$skus" max_ms) | 1 | | |"
  for backend in sqlite postgres; do
    rps=$(median "dermis backend=$backend" "$skus" rps %.0f)
    ratio=$(awk -v a="$rps" -v b="$base" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "-" }')
    f() { median "dermis backend=$backend" "$skus" "$1" "${2:-%.2f}"; }
    name=$([ "$backend" = sqlite ] && echo SQLite || echo PostgreSQL)
    echo "| Dermis on $name | $skus | $rps | $(f p50_ms) | $(f p99_ms) | $(f max_ms) | $ratio | $(f read_p50_us %.1f) | $(f read_p99_us %.1f) |"
  done
done
