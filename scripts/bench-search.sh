#!/usr/bin/env bash
# Search benchmark of issue #3: GET /v1/products searches over the full imported Sephora catalog
# (8,494 products), on SQLite and on PostgreSQL, with a product read as the baseline, in one run.
#
#   scripts/bench-search.sh [DURATION_SECS] [CONNECTIONS] [PRODUCT_INFO_CSV_GZ]
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
CONN=${2:-16}
DATA=${3:-../shared/data/sephora-products-and-skincare-reviews/product_info.csv.gz}
ADMIN_URL=${DERMIS_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
[ -f "$DATA" ] || { echo "no catalog file at $DATA" >&2; exit 1; }
# DERMIS_BENCH_BIN: another build (a baseline commit) to measure instead.
[ -z "${DERMIS_BENCH_BIN:-}" ] && cargo build --release --quiet
BIN=${DERMIS_BENCH_BIN:-target/release/dermis}
WORK=$(mktemp -d)
source scripts/bench-lib.sh
trap bench_cleanup EXIT
TOKEN=$($BIN token --role customer --sub bench --data-dir "$WORK/token")

echo "import into SQLite:"; $BIN import catalog "$DATA" --data-dir "$WORK/sqlite" > "$WORK/import-sqlite.txt"; head -1 "$WORK/import-sqlite.txt"
start_node sqlite 18091
rows=("sqlite:18091")
PG_URL=$(fresh_pg_db "$ADMIN_URL" dermis_bench_search)
if [ -n "$PG_URL" ]; then
  echo "import into PostgreSQL:"; DERMIS_DATABASE_URL=$PG_URL $BIN import catalog "$DATA" > "$WORK/import-pg.txt"; head -1 "$WORK/import-pg.txt"
  start_node postgres 18092 "$PG_URL"; rows+=("postgres:18092")
fi

QUERIES=(
  "text|q=vitamin%20c&limit=50"
  "filters|routine_step=moisturizer&fragrance_free=true&skin_type=dry&non_comedogenic=true&exclude_ingredients=linalool,limonene&limit=50"
  "family exclusion|category=Skincare&exclude_ingredients=fragrance,parabens,drying-alcohols&limit=50"
  "facets|category=Skincare&facets=true&limit=20"
  "text, 3 words|q=vitamin%20c%20serum&limit=50"
  "text, typo|q=hyaluronc&limit=50"
  "text, prefix|q=moistur&limit=50"
  "text + facets|q=serum&facets=true&limit=20"
  "everything, facets|facets=true&limit=50"
)
table_header
for row in "${rows[@]}"; do
  name=${row%%:*}; port=${row##*:}
  id=$(curl -fs -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$port/v1/products?limit=1" | sed -E 's/^\{"items":\[\{"id":"([^"]+)".*/\1/')
  wrk_row "product read, baseline ($name)" "http://127.0.0.1:$port/v1/products/$id" "$TOKEN"
  for q in "${QUERIES[@]}"; do
    wrk_row "search: ${q%%|*} ($name)" "http://127.0.0.1:$port/v1/products?${q#*|}" "$TOKEN"
  done
done
