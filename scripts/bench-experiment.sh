#!/usr/bin/env bash
# What a running experiment adds to a recommendation request, through HTTP (issue 16): the demo
# on SQLite, wrk on `GET /v1/customers/demo-ana/recommendations?k=10&placement=home` for
# DURATION seconds with CONN connections, alternating ROUNDS times between no experiment on the
# placement and a started one (a 50/50 split whose variant changes the blend). Prints wrk's
# latency percentiles per round.
#
#   scripts/bench-experiment.sh [DURATION_SECS] [CONNECTIONS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
CONN=${2:-8}
ROUNDS=${3:-2}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
[ -z "${DERMIS_BENCH_BIN:-}" ] && cargo build --release --quiet --bin dermis
BIN=${DERMIS_BENCH_BIN:-target/release/dermis}
WORK=$(mktemp -d)
PORT=18097
URL=http://127.0.0.1:$PORT
$BIN demo --data-dir "$WORK/data" --listen 127.0.0.1:$PORT > "$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 1 120); do curl -sf "$URL/readyz" >/dev/null && break; sleep 0.5; done
ADMIN=$($BIN token --role admin --sub bench --data-dir "$WORK/data")
PATH_Q="/v1/customers/demo-ana/recommendations?k=10&placement=home"
curl -sf -H "Authorization: Bearer $ADMIN" "$URL$PATH_Q" >/dev/null
run() { # label
  printf '%-16s ' "$1"
  wrk -t2 -c"$CONN" -d"${DUR}s" --latency -H "Authorization: Bearer $ADMIN" "$URL$PATH_Q" \
    | awk '/Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} END {printf "req/s %s  p50 %s  p99 %s\n", rps, p50, p99}'
}
for r in $(seq 1 "$ROUNDS"); do
  run "no experiment"
  KEY="bench-$r"
  curl -sf -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
    -d "{\"key\":\"$KEY\",\"placement\":\"home\",\"variants\":[{\"key\":\"control\",\"weight\":0.5},{\"key\":\"content\",\"weight\":0.5,\"config\":{\"blend\":{\"content\":1.5}}}]}" \
    "$URL/v1/experiments" >/dev/null
  curl -sf -X POST -H "Authorization: Bearer $ADMIN" "$URL/v1/experiments/$KEY/start" >/dev/null
  # The node reads running experiments every 5 s; wait until the answers name it.
  for _ in $(seq 1 40); do
    curl -sf -H "Authorization: Bearer $ADMIN" "$URL$PATH_Q" | grep -q "\"experiment\"" && break; sleep 0.25
  done
  run "experiment"
  curl -sf -X POST -H "Authorization: Bearer $ADMIN" "$URL/v1/experiments/$KEY/stop" >/dev/null
  sleep 6
done
echo "exposure events stored: $(curl -sf -H "Authorization: Bearer $ADMIN" "$URL/v1/experiments/bench-1/results" | grep -o '"units":{[^}]*}')"
