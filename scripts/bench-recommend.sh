#!/usr/bin/env bash
# Recommendation benchmark of issue 14, one run on one node (SQLite, embedded bus): the full
# Sephora catalog imported, the 10-core training split imported as `Product Reviewed` events,
# CUSTOMERS customers (the split's 9,246 reviewers with their histories, the rest new, each with a
# random skin profile), then:
#   - the model the node trained at start (its fit time),
#   - throughput and latency with wrk (closed loop, CONN connections) next to /healthz,
#   - latency at a fixed RATE (open loop, scripts' recommend_load example) next to /healthz,
#   - a purchase reflected in the next response (p50/p99).
#
#   scripts/bench-recommend.sh [DURATION_SECS] [CONNECTIONS] [CUSTOMERS] [RATE]
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
CONN=${2:-16}
CUSTOMERS=${3:-100000}
RATE=${4:-2000}
DATA=../shared/data/sephora-products-and-skincare-reviews
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
[ -f "$DATA/product_info.csv.gz" ] || { echo "no catalog at $DATA" >&2; exit 1; }
# DERMIS_BENCH_BIN / DERMIS_BENCH_LOAD: builds made elsewhere (another target dir).
[ -z "${DERMIS_BENCH_BIN:-}" ] && cargo build --release --quiet --bin dermis
[ -z "${DERMIS_BENCH_LOAD:-}" ] && cargo build --release --quiet --example recommend_load
BIN=${DERMIS_BENCH_BIN:-target/release/dermis}
LOAD=${DERMIS_BENCH_LOAD:-target/release/examples/recommend_load}
WORK=$(mktemp -d)
source scripts/bench-lib.sh
trap bench_cleanup EXIT
SPLIT=$DATA/derived/ishitasingh23-skincare-10core-splits/train_df.csv.gz

echo "import:"
$BIN import catalog "$DATA/product_info.csv.gz" --data-dir "$WORK/sqlite" > "$WORK/import.txt"; head -1 "$WORK/import.txt"
$BIN import interactions "$SPLIT" --data-dir "$WORK/sqlite" > "$WORK/interactions.txt"; head -1 "$WORK/interactions.txt"
zcat "$SPLIT" | tail -n +2 | cut -d, -f1 | sort -u > "$WORK/reviewers"
ADMIN=$($BIN token --role admin --sub bench --data-dir "$WORK/sqlite")
start_node sqlite 18095
URL=http://127.0.0.1:18095
KEY=$($BIN write-key create bench --data-dir "$WORK/sqlite")

echo "the model trained at start:"
for _ in $(seq 1 300); do
  state=$(curl -fs -H "Authorization: Bearer $ADMIN" "$URL/v1/recommendations/model" || true)
  echo "$state" | grep -q '"model":"' && break
  sleep 1
done
echo "  $state"

echo "customers:"
$LOAD seed "$URL" "$ADMIN" "$CUSTOMERS" "$WORK/reviewers" "$WORK/ids"
head -n 9246 "$WORK/ids" > "$WORK/ids-with-history"
echo "retrain now (on an idle node):"
start=$(date +%s.%N)
curl -fs -X POST -H "Authorization: Bearer $ADMIN" "$URL/v1/recommendations/model/retrain"; echo
echo "  wall $(echo "$(date +%s.%N) - $start" | bc) s"

table_header
wrk_row "GET /healthz" "$URL/healthz"
out=$(IDS="$WORK/ids" TOKEN=$ADMIN wrk -t2 -c"$CONN" -d"${DUR}s" --timeout 10s --latency -s scripts/bench-recommend.lua "$URL")
printf '| %s | %s | %s | %s | %s |\n' "GET /v1/customers/{id}/recommendations?k=10 (all customers)" \
  "$(echo "$out" | awk '/Requests\/sec/ {print $2}')" "$(echo "$out" | awk '$1=="50%" {print $2}')" \
  "$(echo "$out" | awk '$1=="99%" {print $2}')" "$(echo "$out" | awk '/Non-2xx/ {print $5}')"
out=$(IDS="$WORK/ids-with-history" TOKEN=$ADMIN wrk -t2 -c"$CONN" -d"${DUR}s" --timeout 10s --latency -s scripts/bench-recommend.lua "$URL")
printf '| %s | %s | %s | %s | %s |\n' "GET /v1/customers/{id}/recommendations?k=10 (customers with a history)" \
  "$(echo "$out" | awk '/Requests\/sec/ {print $2}')" "$(echo "$out" | awk '$1=="50%" {print $2}')" \
  "$(echo "$out" | awk '$1=="99%" {print $2}')" "$(echo "$out" | awk '/Non-2xx/ {print $5}')"

echo
echo "open loop at $RATE/s for ${DUR} s:"
$LOAD rate "$URL" "$ADMIN" "$WORK/ids" "$RATE" "$DUR" /healthz
$LOAD rate "$URL" "$ADMIN" "$WORK/ids" "$RATE" "$DUR"
$LOAD rate "$URL" "$ADMIN" "$WORK/ids-with-history" "$RATE" "$DUR"
echo
$LOAD reflect "$URL" "$ADMIN" "$KEY" "$WORK/ids-with-history" 300
