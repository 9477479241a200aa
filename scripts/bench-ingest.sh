#!/usr/bin/env bash
# Ingestion benchmark of issue #4: batched Segment ingestion (100 messages per request, all new
# messageIds) on SQLite (embedded bus, and NATS JetStream as the bus) and PostgreSQL, next to the event log's raw insert rate (no HTTP) as the
# ceiling, in one run.
#
#   scripts/bench-ingest.sh [DURATION_SECS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
CONN=${2:-8}
ADMIN_URL=${DERMIS_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
# DERMIS_BENCH_BIN / DERMIS_BENCH_INSERT_RATE: other builds (a baseline commit) to measure instead.
if [ -z "${DERMIS_BENCH_BIN:-}" ]; then
  cargo build --release --quiet
  cargo build --release --quiet -p dermis-events --example insert_rate
fi
BIN=${DERMIS_BENCH_BIN:-target/release/dermis}
INSERT_RATE=${DERMIS_BENCH_INSERT_RATE:-target/release/examples/insert_rate}
WORK=$(mktemp -d)
source scripts/bench-lib.sh
trap bench_cleanup EXIT

echo "raw insert rate (no HTTP), batches of 100:"
$INSERT_RATE sqlite 200000 100
PG_URL=$(fresh_pg_db "$ADMIN_URL" dermis_bench_ingest)
[ -n "$PG_URL" ] && $INSERT_RATE "$PG_URL" 100000 100

start_node sqlite 18101
rows=("sqlite:18101")
NATS_URL=${DERMIS_BENCH_NATS_URL:-nats://127.0.0.1:4222}
DERMIS_BUS_URL=$NATS_URL DERMIS_BUS_STREAM="BENCH$$" start_node sqlite-nats 18103
rows+=("sqlite+nats:18103")
PG_URL2=$(fresh_pg_db "$ADMIN_URL" dermis_bench_ingest_http)
if [ -n "$PG_URL2" ]; then start_node postgres 18102 "$PG_URL2"; rows+=("postgres:18102"); fi

table_header
for row in "${rows[@]}"; do
  name=${row%%:*}; port=${row##*:}
  TOKEN=$($BIN token --role admin --data-dir "$WORK/token")
  KEY=$(curl -fs -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{"name":"bench"}' "http://127.0.0.1:$port/v1/write-keys" | sed -E 's/.*"write_key":"([^"]+)".*/\1/')
  out=$(WRITE_KEY=$KEY wrk -t2 -c"$CONN" -d"${DUR}s" --latency -s scripts/bench-ingest.lua "http://127.0.0.1:$port")
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  errors=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  printf '| POST /v1/batch x100 (%s): %.0f events/s | %s | %s | %s | %s |\n' "$name" "$(awk -v r="$rps" 'BEGIN { print r * 100 }')" "$rps" "$p50" "$p99" "${errors:-0}"
done
