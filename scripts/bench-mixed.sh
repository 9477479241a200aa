#!/usr/bin/env bash
# Mixed load of the hardening issue: batched, browser-shaped ingestion (bench-ingest-browser.lua,
# 100 messages per request, 100,000 customers) and product reads at the same time, on one SQLite
# node with the embedded bus, once with feature snapshots every SNAP seconds and once without.
# The snapshots grow with the features held in memory; the question is whether taking and
# writing them stalls ingestion.
#
#   scripts/bench-mixed.sh [DURATION_SECS] [CONNECTIONS_EACH] [SNAPSHOT_SECS]
#   DERMIS_BENCH_BIN=/path/to/other/dermis scripts/bench-mixed.sh ...   # a baseline build
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-60}
CONN=${2:-12}
SNAP=${3:-10}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
if [ -z "${DERMIS_BENCH_BIN:-}" ]; then cargo build --release --quiet; fi
BIN=${DERMIS_BENCH_BIN:-target/release/dermis}
WORK=$(mktemp -d)
source scripts/bench-lib.sh
trap bench_cleanup EXIT

stats() { # wrk output -> "req/s p50 p99 max"
  awk '/Requests\/sec/ {r=$2} $1=="50%" {p50=$2} $1=="99%" {p99=$2} /Latency/ && !l {max=$4; l=1} END {print r, p50, p99, max}'
}

echo
echo "$(basename "$BIN") at $(cd "$(dirname "$BIN")" && git rev-parse --short HEAD 2>/dev/null || echo '?'), wrk -t1 -c$CONN x2 -d${DUR}s, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| snapshots | ingestion events/s | ingestion p50 | p99 | max | reads req/s | read p50 | p99 | max |"
echo "|---|---|---|---|---|---|---|---|---|"
port=18201
for snap in "$SNAP" 0; do
  port=$((port + 1))
  DERMIS_FEATURES__SNAPSHOT_SECS=$snap start_node "mixed-$snap" $port
  TOKEN=$($BIN token --role admin --data-dir "$WORK/token")
  KEY=$(curl -fs -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{"name":"bench"}' "http://127.0.0.1:$port/v1/write-keys" | sed -E 's/.*"write_key":"([^"]+)".*/\1/')
  PRODUCT=$(curl -fs -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{"name":"Barrier Cream","brand":"Dermis Labs","ingredients":"Water, Glycerin, Niacinamide"}' "http://127.0.0.1:$port/v1/products" | sed -E 's/^\{"id":"([^"]+)".*/\1/')
  WRITE_KEY=$KEY wrk -t1 -c"$CONN" -d"${DUR}s" --latency -s scripts/bench-ingest-browser.lua "http://127.0.0.1:$port" > "$WORK/ingest.out" &
  ingest_pid=$!
  wrk -t1 -c"$CONN" -d"${DUR}s" --latency -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$port/v1/products/$PRODUCT" > "$WORK/read.out"
  wait "$ingest_pid" || true
  read -r irps ip50 ip99 imax < <(stats < "$WORK/ingest.out")
  read -r rrps rp50 rp99 rmax < <(stats < "$WORK/read.out")
  slow=$(grep -c "slow statement" "$WORK/mixed-$snap.log" || true)
  label=$([ "$snap" = 0 ] && echo "off" || echo "every ${snap} s")
  printf '| %s | %.0f | %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$(awk -v r="$irps" 'BEGIN { print r * 100 }')" "$ip50" "$ip99" "$imax" "$rrps" "$rp50" "$rp99" "$rmax"
  echo "  (slow statement warnings in the node's log: $slow)" >&2
  kill "${PIDS[-1]}" 2>/dev/null || true
  wait "${PIDS[-1]}" 2>/dev/null || true
done
