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
source scripts/bench-lib.sh
trap bench_cleanup EXIT

TOKEN=$($BIN token --role analyst --data-dir "$WORK/token")
WTOKEN=$($BIN token --role merchandiser --data-dir "$WORK/token")

start_node sqlite 18081
rows=("sqlite:18081")
PG_URL=$(fresh_pg_db "$ADMIN_URL" dermis_bench)
if [ -n "$PG_URL" ]; then start_node postgres 18082 "$PG_URL"; rows+=("postgres:18082"); else echo "PostgreSQL unreachable: no postgres row" >&2; fi

product_on() { # port -> id of a new realistic product
  curl -fs -H "Authorization: Bearer $WTOKEN" -H 'Content-Type: application/json' \
    -d '{"name":"Ceramide Barrier Cream","brand":"Dermis Labs","category":"Skincare/Moisturizers","ingredients":"Aqua, Glycerin, Caprylic/Capric Triglyceride, Ceramide NP, Cholesterol, Phytosphingosine, Tocopherol"}' \
    "http://127.0.0.1:$1/v1/products" | sed -E 's/^\{"id":"([^"]+)".*/\1/'
}

table_header
wrk_row "GET /healthz (sqlite node)" "http://127.0.0.1:18081/healthz"
for row in "${rows[@]}"; do
  name=${row%%:*}; port=${row##*:}
  wrk_row "GET /v1/products/{id} ($name)" "http://127.0.0.1:$port/v1/products/$(product_on "$port")" "$TOKEN"
done
