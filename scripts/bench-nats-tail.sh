#!/usr/bin/env bash
# SQLite with the embedded bus, then with NATS JetStream as the bus: batched ingestion
# (bench-ingest.lua) sustained, p50/p99/max, and the outbox rows left at the end.
#   scripts/bench-nats-tail.sh BIN [DURATION_SECS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$1; DUR=${2:-60}; CONN=${3:-8}
WORK=$(mktemp -d)
source scripts/bench-lib.sh
trap bench_cleanup EXIT
for mode in embedded nats; do
  port=$((18300 + RANDOM % 500))
  if [ $mode = nats ]; then DERMIS_BUS_URL=nats://127.0.0.1:4222 DERMIS_BUS_STREAM="BENCHN$$" start_node $mode $port; else start_node $mode $port; fi
  TOKEN=$($BIN token --role admin --data-dir "$WORK/token")
  KEY=$(curl -fs -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{"name":"bench"}' "http://127.0.0.1:$port/v1/write-keys" | sed -E 's/.*"write_key":"([^"]+)".*/\1/')
  out=$(WRITE_KEY=$KEY wrk -t2 -c"$CONN" -d"${DUR}s" --latency -s scripts/bench-ingest.lua "http://127.0.0.1:$port")
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}'); p50=$(echo "$out" | awk '$1=="50%" {print $2}'); p99=$(echo "$out" | awk '$1=="99%" {print $2}'); max=$(echo "$out" | awk '/Latency/ {print $4; exit}')
  left=$(python3 -c "import sqlite3,sys; c=sqlite3.connect('$WORK/$mode/dermis.sqlite'); print(c.execute('select count(*) from events_outbox').fetchone()[0])")
  printf '| %s | %.0f events/s | %s | %s | %s | outbox rows left: %s |\n' "$mode" "$(awk -v r="$rps" 'BEGIN { print r * 100 }')" "$p50" "$p99" "$max" "$left"
  kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
done
