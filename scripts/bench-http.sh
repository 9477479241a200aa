#!/usr/bin/env bash
# HTTP benchmark of issue #2: GET /v1/products/{id} on SQLite and on PostgreSQL next to GET /healthz
# (the ceiling of the HTTP stack), in one run, with wrk on loopback.
#
#   scripts/bench-http.sh [DURATION_SECS] [CONNECTIONS]
#
# Needs wrk (apt-get install wrk) and, for the PostgreSQL row, a server at
# $DERMIS_BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres) where the user
# may create databases. Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-15}
CONN=${2:-32}
ADMIN_URL=${DERMIS_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }

cargo build --release --quiet
BIN=target/release/dermis
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

export DERMIS_AUTH__JWT_SECRET=bench-secret-bench-secret-bench-secret
export DERMIS_LOG__FILTER=warn

start() { # name port [database_url]
  local name=$1 port=$2 url=${3:-}
  if [ -n "$url" ]; then
    DERMIS_DATABASE_URL=$url $BIN serve --listen 127.0.0.1:$port --data-dir "$WORK/$name" 2>"$WORK/$name.log" &
  else
    $BIN serve --listen 127.0.0.1:$port --data-dir "$WORK/$name" 2>"$WORK/$name.log" &
  fi
  PIDS+=($!)
  for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && return 0; sleep 0.2; done
  echo "$name did not start:" >&2; cat "$WORK/$name.log" >&2; exit 1
}

TOKEN=$($BIN token --role analyst --data-dir "$WORK/token")
WTOKEN=$($BIN token --role merchandiser --data-dir "$WORK/token")

start sqlite 18081
rows=("sqlite:18081")
if psql "$ADMIN_URL" -qc 'select 1' >/dev/null 2>&1; then
  psql "$ADMIN_URL" -qc 'DROP DATABASE IF EXISTS dermis_bench WITH (FORCE)' >/dev/null
  psql "$ADMIN_URL" -qc 'CREATE DATABASE dermis_bench' >/dev/null
  start postgres 18082 "${ADMIN_URL%/*}/dermis_bench"
  rows+=("postgres:18082")
else
  echo "PostgreSQL not reachable at $ADMIN_URL: skipping its row" >&2
fi

product_on() { # port -> id (creates a realistic product with a SKU)
  local port=$1
  local id
  id=$(curl -fs -H "Authorization: Bearer $WTOKEN" -H 'Content-Type: application/json' \
    -d '{"name":"Ceramide Barrier Cream","brand":"Dermis Labs","category":"Skincare/Moisturizers","ingredients":"Aqua, Glycerin, Caprylic/Capric Triglyceride, Ceramide NP, Cholesterol, Phytosphingosine, Tocopherol"}' \
    "http://127.0.0.1:$port/v1/products" | sed -E 's/.*"id":"([^"]+)".*/\1/')
  echo "$id"
}

run() { # label url [auth]
  local label=$1 url=$2 auth=${3:-}
  local out
  if [ -n "$auth" ]; then
    out=$(wrk -t2 -c"$CONN" -d"${DUR}s" --latency -H "Authorization: Bearer $auth" "$url")
  else
    out=$(wrk -t2 -c"$CONN" -d"${DUR}s" --latency "$url")
  fi
  local rps p50 p99 errors
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  errors=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  printf '| %s | %s | %s | %s | %s |\n' "$label" "$rps" "$p50" "$p99" "${errors:-0}"
}

echo
echo "wrk -t2 -c$CONN -d${DUR}s --latency, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| endpoint | req/s | p50 | p99 | non-2xx |"
echo "|---|---|---|---|---|"
run "GET /healthz (sqlite node)" "http://127.0.0.1:18081/healthz"
for row in "${rows[@]}"; do
  name=${row%%:*}; port=${row##*:}
  id=$(product_on "$port")
  run "GET /v1/products/{id} ($name)" "http://127.0.0.1:$port/v1/products/$id" "$TOKEN"
done
