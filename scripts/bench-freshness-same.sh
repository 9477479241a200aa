#!/usr/bin/env bash
# Same-node freshness (event accepted -> visible in the node's online features), two builds side
# by side, alternating: for each round, each build gets a fresh embedded node (SQLite, embedded
# bus, features in memory) and N events one at a time (examples/freshness.rs). Prints p50 / p99
# per build and round.
#
#   scripts/bench-freshness-same.sh OLD_BIN NEW_BIN [ROUNDS] [EVENTS] [FRESHNESS_CLIENT]
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=$1; NEW=$2; ROUNDS=${3:-3}; N=${4:-500}
CLIENT=${5:-target/release/examples/freshness}
[ -x "$CLIENT" ] || cargo build --release --quiet --example freshness
WORK=$(mktemp -d)
BIN=$OLD
source scripts/bench-lib.sh
trap bench_cleanup EXIT
TOKEN=$($OLD token --role admin --data-dir "$WORK/token")
echo "| build | $(seq -s ' | ' 1 "$ROUNDS" | sed 's/[0-9]\+/round &/g') |"
echo "|---$(printf '|---%.0s' $(seq 1 "$ROUNDS"))|"
declare -A row
for r in $(seq 1 "$ROUNDS"); do
  for b in old new; do
    if [ "$b" = old ]; then BIN=$OLD; off=0; else BIN=$NEW; off=1; fi
    port=$((18300 + r * 2 + off))
    start_node "$b-$r" "$port"
    key=$(curl -fs -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{"name":"bench"}' \
      "http://127.0.0.1:$port/v1/write-keys" | sed -E 's/.*"write_key":"([^"]+)".*/\1/')
    row[$b]="${row[$b]:-} | $("$CLIENT" "http://127.0.0.1:$port" "http://127.0.0.1:$port" "$key" "$TOKEN" "$N")"
    kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
  done
done
echo "| old ($OLD)${row[old]} |"
echo "| new ($NEW)${row[new]} |"
