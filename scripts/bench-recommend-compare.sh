#!/usr/bin/env bash
# Recommendation serving, two builds side by side on the same data (issue 14): the full Sephora
# catalog, the 10-core training split as `Product Reviewed` events and 100,000 customers (the
# split's 9,246 reviewers and new ones, random skin profiles) are prepared once in DATA_DIR with
# the first binary (kept for later runs: delete it to start over); then, for each binary in turn,
# one node on its own copy of that directory, measured once every projection has caught up:
#   - wrk closed loop (CONN connections, DUR s): /healthz, then recommendations for a random
#     customer (scripts/bench-recommend.lua), next to each other;
#   - open loop at RATE/s (examples/recommend_load.rs): /healthz, all customers, customers with a
#     history, all customers again;
#   - a full retrain on the idle node (`POST /v1/recommendations/model/retrain`, wall time);
#   - REFLECT purchases, each followed by requests until the response no longer lists the product.
# Each node runs on its own fresh copy of the prepared directory, so both see the same data.
#
#   scripts/bench-recommend-compare.sh OLD_BIN NEW_BIN [DATA_DIR]
#   (LOAD=path/to/recommend_load, DUR=10, CONN=16, RATE=2000, REFLECT=300)
#
# The bench token lives an hour: it is made again for every node.
set -u
cd "$(dirname "$0")/.."
OLD=$1; NEW=$2; WORK=${3:-/tmp/dermis-rec-bench}
DUR=${DUR:-10}; CONN=${CONN:-16}; RATE=${RATE:-2000}; REFLECT=${REFLECT:-300}
LOAD=${LOAD:-target/release/examples/recommend_load}
[ -x "$LOAD" ] || cargo build --release --quiet --example recommend_load
DATA=../shared/data/sephora-products-and-skincare-reviews
SPLIT=$DATA/derived/ishitasingh23-skincare-10core-splits/train_df.csv.gz
export DERMIS_AUTH__JWT_SECRET=${DERMIS_AUTH__JWT_SECRET:-bench-secret-bench-secret-bench-secret}
export DERMIS_LOG__FILTER=${DERMIS_LOG__FILTER:-warn}
export DERMIS_CUSTOMERS__MASTER_KEY=${DERMIS_CUSTOMERS__MASTER_KEY:-YmVuY2gtbWFzdGVyLWtleS1iZW5jaC1tYXN0ZXIta2U=}
URL=http://127.0.0.1:18095
PID=
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; wait 2>/dev/null' EXIT

node() { # BIN [DIR]: start a node on DIR (default WORK/sqlite) and wait until it serves a model
  DIR=${2:-$WORK/sqlite}
  "$1" serve --listen 127.0.0.1:18095 --data-dir "$DIR" 2>"$WORK/node.log" &
  PID=$!
  for _ in $(seq 1 600); do curl -fs "$URL/readyz" 2>/dev/null | grep -vq '"rebuilt":false' && break; sleep 0.5; done
  ADMIN=$("$1" token --role admin --sub bench --data-dir "$DIR")
  for _ in $(seq 1 300); do curl -fs -H "Authorization: Bearer $ADMIN" "$URL/v1/recommendations/model" | grep -q '"model":"' && break; sleep 1; done
  # Steady state: a projection rebuilt from its snapshot still applies what came after it (the
  # customer profiles: tens of seconds for 100,000 customers), which would share the CPU with
  # whatever is measured first.
  # The lag on /readyz is sampled every 5 s: two samples at 0, 6 s apart.
  for _ in 1 2; do
    for _ in $(seq 1 600); do
      body=$(curl -fs "$URL/readyz") && ! grep -q '"lag":[1-9]' <<<"$body" && break
      sleep 0.5
    done
    sleep 6
  done
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null; PID=; }

if [ ! -f "$WORK/ids" ]; then
  mkdir -p "$WORK"
  "$OLD" import catalog "$DATA/product_info.csv.gz" --data-dir "$WORK/sqlite" > "$WORK/import.txt"
  "$OLD" import interactions "$SPLIT" --data-dir "$WORK/sqlite" > "$WORK/interactions.txt"
  zcat "$SPLIT" | tail -n +2 | cut -d, -f1 | sort -u > "$WORK/reviewers"
  node "$OLD"
  "$LOAD" seed "$URL" "$ADMIN" 100000 "$WORK/reviewers" "$WORK/ids"
  head -n 9246 "$WORK/ids" > "$WORK/ids-with-history"
  stop
fi

for BIN in "$OLD" "$NEW"; do
  echo "== $BIN"
  rm -rf "$WORK/run" && cp -a "$WORK/sqlite" "$WORK/run"
  KEY=$("$BIN" write-key create bench --data-dir "$WORK/run")
  node "$BIN" "$WORK/run"
  sleep 2
  wrk -t2 -c"$CONN" -d"${DUR}s" --latency "$URL/healthz" | grep -E "Requests/sec|  50%|  99%" | sed 's/^/healthz /'
  IDS="$WORK/ids" TOKEN=$ADMIN wrk -t2 -c"$CONN" -d3s --timeout 10s -s scripts/bench-recommend.lua "$URL" >/dev/null
  IDS="$WORK/ids" TOKEN=$ADMIN wrk -t2 -c"$CONN" -d"${DUR}s" --timeout 10s --latency -s scripts/bench-recommend.lua "$URL" |
    grep -E "Requests/sec|  50%|  99%|Non-2xx" | sed 's/^/recommendations /'
  "$LOAD" rate "$URL" "$ADMIN" "$WORK/ids" "$RATE" "$DUR" /healthz
  "$LOAD" rate "$URL" "$ADMIN" "$WORK/ids" "$RATE" "$DUR"
  "$LOAD" rate "$URL" "$ADMIN" "$WORK/ids-with-history" "$RATE" "$DUR"
  "$LOAD" rate "$URL" "$ADMIN" "$WORK/ids" "$RATE" "$DUR"
  sleep 2
  start=$(date +%s.%N)
  curl -fs -X POST -H "Authorization: Bearer $ADMIN" "$URL/v1/recommendations/model/retrain" | head -c 300; echo
  echo "retrain wall $(echo "$(date +%s.%N) - $start" | bc) s"
  "$LOAD" reflect "$URL" "$ADMIN" "$KEY" "$WORK/ids-with-history" "$REFLECT"
  stop
done
