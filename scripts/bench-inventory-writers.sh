#!/usr/bin/env bash
# Several Dermis processes writing one PostgreSQL: one-unit holds per second and their latency
# with 1 and with 3 writers sharing the store, taking turns (3) or two of them forwarding to the
# lease holder over HTTP (3f) (crates/inventory/examples/reserve_bench.rs --writers [--forward]:
# each writer its own connection pool, ledger and writer task, as separate processes would have),
# on one hot SKU and spread over 10,000 SKUs. Every configuration runs RUNS times,
# interleaved; the table shows medians, with the callers answered "not persisted" (failed), the
# batches writers replayed from each other and the whole reloads.
#
#   scripts/bench-inventory-writers.sh                 # RUNS=3 BENCH_SECONDS=10 CLIENTS=48
#   OLD_BIN=/path/to/old/reserve_bench scripts/bench-inventory-writers.sh
#
# OLD_BIN: also run another build of the example (one that has --writers) in the same rounds,
# for a before/after on the same machine. Needs cargo and a PostgreSQL as in bench-inventory.sh.
set -euo pipefail
RUNS=${RUNS:-3}
SECONDS_=${BENCH_SECONDS:-10}
CLIENTS=${CLIENTS:-48}
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/bench-target}
export DERMIS_BENCH_POSTGRES_URL=${DERMIS_BENCH_POSTGRES_URL:-postgres://$PGUSER@$PGHOST:$PGPORT/postgres}
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/.."

cargo build --release -q -p dermis-inventory --example reserve_bench
NEW_BIN=$CARGO_TARGET_DIR/release/examples/reserve_bench
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT

builds="new"
# Writers per run: 1, 3 taking turns, and 3f: 3 of which two forward to the lease holder (only
# builds from af110e6 on have --forward).
modes() { if [ "$1" = new ]; then echo "1 3 3f"; else echo "1 3"; fi; }
[ -n "${OLD_BIN:-}" ] && builds="old new"
echo "# $(date -u +%FT%TZ) $(nproc) cores, $(uname -r); RUNS=$RUNS BENCH_SECONDS=$SECONDS_ CLIENTS=$CLIENTS" >&2
for run in $(seq 1 "$RUNS"); do
  for build in $builds; do
    bin=$NEW_BIN
    [ "$build" = old ] && bin=$OLD_BIN
    for mode in $(modes "$build"); do
      writers=${mode%f}
      forward=()
      [ "$mode" != "$writers" ] && forward=(--forward)
      for skus in 1 10000; do
        # A run whose checks fail still prints its line (ok=0): kept, and reported below.
        line=$("$bin" --backend postgres --skus "$skus" --tasks "$CLIENTS" --seconds "$SECONDS_" \
          --writers "$writers" "${forward[@]}" 2>/dev/null || true)
        line="$build $mode $line"
        echo "$line" >&2
        echo "$line" >> "$OUT"
      done
    done
  done
done

# median BUILD MODE SKUS FIELD [FORMAT]
median() {
  grep "^$1 $2 " "$OUT" | grep " skus=$3 " | sed -n "s/.* $4=\([^ ]*\).*/\1/p" | sort -g |
    awk -v f="${5:-%.2f}" '{ v[NR] = $1 } END {
      if (NR == 0) { print "-"; exit }
      m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      printf f "\n", m }'
}
echo
echo "| build | writers | SKUs | reservations/s | p50 ms | p99 ms | max ms | failed | forwarded | fallbacks | replayed batches | reloads | runs ok |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for build in $builds; do
  for mode in $(modes "$build"); do
    for skus in 1 10000; do
      f() { median "$build" "$mode" "$skus" "$1" "${2:-%.2f}"; }
      ok=$(grep "^$build $mode " "$OUT" | grep " skus=$skus " | grep -c " ok=1" || true)
      echo "| $build | $mode | $skus | $(f rps %.0f) | $(f p50_ms) | $(f p99_ms) | $(f max_ms) | $(f failed %.0f) | $(f forwarded %.0f) | $(f fallbacks %.0f) | $(f replayed_batches %.0f) | $(f reloads %.0f) | $ok/$RUNS |"
    done
  done
done
if grep "^new " "$OUT" | grep -qv " ok=1"; then echo "a run of this build failed its checks" >&2; exit 1; fi
