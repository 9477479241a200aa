#!/usr/bin/env bash
# Relevance of GET /v1/products?q= : imports the full Sephora catalog into a fresh SQLite data dir,
# starts a node, and scores the judged queries of crates/catalog/tests/relevance/judgements.json
# with scripts/relevance.py (NDCG@10 per query and the mean).
#
#   scripts/bench-relevance.sh [BIN] [OUT_JSON]
#
# BIN (or $DERMIS_BENCH_BIN): a `dermis` binary to measure (e.g. one built from an older commit); without it the current
# tree is built with `cargo build --release -p dermis`. OUT_JSON: also write the results as JSON
# (compare two runs with `scripts/relevance.py --compare A.json B.json`).
# Environment: DATA (the product_info CSV), PORT (default 18093), LABEL (a name for the run),
# SHOW=1 (print every query's top 10 with grades).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-${DERMIS_BENCH_BIN:-}}
OUT=${2:-}
DATA=${DATA:-../shared/data/sephora-products-and-skincare-reviews/product_info.csv.gz}
PORT=${PORT:-18093}
JUDGEMENTS=crates/catalog/tests/relevance/judgements.json
[ -f "$DATA" ] || { echo "no catalog file at $DATA (set DATA=...)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 is needed" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is needed" >&2; exit 1; }
if [ -z "$BIN" ]; then
  cargo build --release --quiet -p dermis
  BIN=target/release/dermis
fi
[ -x "$BIN" ] || { echo "$BIN is not an executable dermis binary" >&2; exit 1; }
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
LABEL=${LABEL:-$BIN}
WORK=$(mktemp -d)
source scripts/bench-lib.sh
trap bench_cleanup EXIT

TOKEN=$($BIN token --role customer --sub bench --data-dir "$WORK/token")
echo "import into SQLite ($DATA):"
$BIN import catalog "$DATA" --data-dir "$WORK/node" > "$WORK/import.txt"
head -1 "$WORK/import.txt"
start_node node "$PORT"

args=(--base-url "http://127.0.0.1:$PORT" --token "$TOKEN" --judgements "$JUDGEMENTS" --label "$LABEL")
[ -n "$OUT" ] && args+=(--json-out "$OUT")
[ "${SHOW:-0}" = 1 ] && args+=(--show)
echo
python3 scripts/relevance.py "${args[@]}"
