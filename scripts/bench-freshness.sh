#!/usr/bin/env bash
# Event-to-feature freshness of issue #4 (examples/freshness.rs), in one run:
#   - one node on the embedded default (SQLite, embedded bus, features in memory): read-your-writes;
#   - two nodes on PostgreSQL + NATS JetStream, features in memory on each: A ingests, B learns
#     from the bus;
#   - two nodes on PostgreSQL + NATS + Redis (the scale-out deployment): B reads what A wrote;
#   - two nodes on PostgreSQL with the embedded bus (a table, polled across processes).
#
#   scripts/bench-freshness.sh [EVENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-500}
ADMIN_URL=${DERMIS_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
NATS_URL=${DERMIS_BENCH_NATS_URL:-nats://127.0.0.1:4222}
REDIS_URL=${DERMIS_BENCH_REDIS_URL:-redis://127.0.0.1:6379}
# DERMIS_BENCH_BIN: another build (a baseline commit) to measure instead; the measuring client
# is always this tree's.
[ -z "${DERMIS_BENCH_BIN:-}" ] && cargo build --release --quiet
cargo build --release --quiet --example freshness
BIN=${DERMIS_BENCH_BIN:-target/release/dermis}
WORK=$(mktemp -d)
source scripts/bench-lib.sh
trap bench_cleanup EXIT
TOKEN=$($BIN token --role admin --data-dir "$WORK/token")

write_key() {
  curl -fs -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{"name":"bench"}' \
    "http://127.0.0.1:$1/v1/write-keys" | sed -E 's/.*"write_key":"([^"]+)".*/\1/'
}
measure() { # LABEL PORT_A PORT_B
  printf '| %s | %s |\n' "$1" "$(target/release/examples/freshness "http://127.0.0.1:$2" "http://127.0.0.1:$3" "$(write_key "$2")" "$TOKEN" "$N")"
}

echo
echo "$N events, one at a time, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| deployment | freshness |"
echo "|---|---|"
start_node sqlite 18201
measure "embedded default, same node" 18201 18201

STREAM="BENCH$$"
PG=$(fresh_pg_db "$ADMIN_URL" dermis_bench_fresh_nats)
DERMIS_BUS_URL=$NATS_URL DERMIS_BUS_STREAM=$STREAM DERMIS_NODE_ID=a start_node nats-a 18211 "$PG"
DERMIS_BUS_URL=$NATS_URL DERMIS_BUS_STREAM=$STREAM DERMIS_NODE_ID=b start_node nats-b 18212 "$PG"
measure "PostgreSQL + NATS, memory features, same node" 18211 18211
measure "PostgreSQL + NATS, memory features, other node" 18211 18212

PG=$(fresh_pg_db "$ADMIN_URL" dermis_bench_fresh_redis)
DERMIS_BUS_URL=$NATS_URL DERMIS_BUS_STREAM=${STREAM}R DERMIS_REDIS_URL=$REDIS_URL DERMIS_NODE_ID=a start_node redis-a 18221 "$PG"
DERMIS_BUS_URL=$NATS_URL DERMIS_BUS_STREAM=${STREAM}R DERMIS_REDIS_URL=$REDIS_URL DERMIS_NODE_ID=b start_node redis-b 18222 "$PG"
measure "PostgreSQL + NATS + Redis, other node" 18221 18222

PG=$(fresh_pg_db "$ADMIN_URL" dermis_bench_fresh_embedded)
DERMIS_NODE_ID=a start_node pg-a 18231 "$PG"
DERMIS_NODE_ID=b start_node pg-b 18232 "$PG"
measure "PostgreSQL + embedded bus, other node" 18231 18232
