#!/usr/bin/env bash
# Customers benchmark of issue 13, one run: profile read and write p99 through HTTP next to
# GET /healthz, and identify events/s through identity resolution next to plain track ingestion
# (100 messages per request), on SQLite and (when reachable) PostgreSQL.
#
#   scripts/bench-customers.sh [DURATION_SECS] [CONNECTIONS] [CUSTOMERS]
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
CONN=${2:-16}
N=${3:-2000}
ADMIN_URL=${DERMIS_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
[ -z "${DERMIS_BENCH_BIN:-}" ] && cargo build --release --quiet
BIN=${DERMIS_BENCH_BIN:-target/release/dermis}
WORK=$(mktemp -d)
source scripts/bench-lib.sh
trap bench_cleanup EXIT

start_node sqlite 18121
rows=("sqlite:18121")
PG_URL=$(fresh_pg_db "$ADMIN_URL" dermis_bench_customers)
if [ -n "$PG_URL" ]; then start_node postgres 18122 "$PG_URL"; rows+=("postgres:18122"); fi
TOKEN=$($BIN token --role admin --data-dir "$WORK/token")

# wrk_mode LABEL MODE URL: a row of the table for one mode of bench-customers.lua.
wrk_mode() {
  local label=$1 mode=$2 url=$3 per=${4:-1}
  local out rps p50 p99 errors
  out=$(MODE=$mode TOKEN=$TOKEN IDS="$WORK/ids-$port" wrk -t2 -c"$CONN" -d"${DUR}s" --timeout 10s --latency -s scripts/bench-customers.lua "$url")
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  errors=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  if [ "$per" -gt 1 ]; then
    label="$label: $(awk -v r="$rps" -v n="$per" 'BEGIN { printf "%.0f", r * n }') events/s"
  fi
  printf '| %s | %s | %s | %s | %s |\n' "$label" "$rps" "$p50" "$p99" "${errors:-0}"
}

for row in "${rows[@]}"; do
  name=${row%%:*}; port=${row##*:}
  echo "creating $N customers on $name ..." >&2
  seq -f "%05g" 1 "$N" | xargs -P 8 -I{} curl -fs -o /dev/null -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d '{"name":"Bench {}","email":"bench{}@example.com","phone":"+4420794{}","user_id":"bench-{}"}' "http://127.0.0.1:$port/v1/customers"
  seq -f "%05g" 1 "$N" | sed 's/^/bench-/' > "$WORK/ids-$port"
done

table_header
for row in "${rows[@]}"; do
  name=${row%%:*}; port=${row##*:}
  base="http://127.0.0.1:$port"
  KEY=$(curl -fs -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{"name":"bench"}' "$base/v1/write-keys" | sed -E 's/.*"write_key":"([^"]+)".*/\1/')
  export WRITE_KEY=$KEY RUN_ID="r$$-$port"
  wrk_row "GET /healthz, baseline ($name)" "$base/healthz"
  wrk_mode "GET /v1/customers/{user_id} ($name)" read "$base"
  wrk_mode "PUT /v1/customers/{user_id}/skin-profile ($name)" write "$base"
  wrk_mode "POST /v1/batch x100 track ($name)" track "$base" 100
  wrk_mode "POST /v1/batch x100 identify ($name)" identify "$base" 100
done
