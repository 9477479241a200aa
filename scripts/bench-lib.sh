# Shared by the benchmark scripts: start Dermis nodes, run wrk, print Markdown rows.
# Expects: BIN (the release binary), WORK (a temp dir), CONN, DUR.

PIDS=()
bench_cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }

export DERMIS_AUTH__JWT_SECRET=${DERMIS_AUTH__JWT_SECRET:-bench-secret-bench-secret-bench-secret}
export DERMIS_LOG__FILTER=${DERMIS_LOG__FILTER:-warn}
# Nodes on one PostgreSQL share the customers' master key (a benchmark-only key).
export DERMIS_CUSTOMERS__MASTER_KEY=${DERMIS_CUSTOMERS__MASTER_KEY:-YmVuY2gtbWFzdGVyLWtleS1iZW5jaC1tYXN0ZXIta2U=}

# start NAME PORT [DATABASE_URL]
start_node() {
  local name=$1 port=$2 url=${3:-}
  if [ -n "$url" ]; then
    DERMIS_DATABASE_URL=$url $BIN serve --listen 127.0.0.1:$port --data-dir "$WORK/$name" 2>"$WORK/$name.log" &
  else
    $BIN serve --listen 127.0.0.1:$port --data-dir "$WORK/$name" 2>"$WORK/$name.log" &
  fi
  PIDS+=($!)
  for _ in $(seq 1 100); do
    # Ready, and every projection of the event stream rebuilt (builds before projections
    # report none).
    curl -fs "http://127.0.0.1:$port/readyz" 2>/dev/null | grep -vq '"rebuilt":false' && { caught_up "$port"; return 0; }
    sleep 0.2
  done
  echo "$name did not start:" >&2; cat "$WORK/$name.log" >&2; exit 1
}

# caught_up PORT: waits (up to 2 minutes) until every projection has applied what was on the bus
# when the node started (a catalog imported before the start is on the bus as events), so what
# follows measures the steady state. The lag is measured every 5 s: it must read 0 twice, 6 s
# apart.
caught_up() {
  local port=$1 zero=0
  for _ in $(seq 1 120); do
    if curl -fs "http://127.0.0.1:$port/readyz" 2>/dev/null | grep -q '"lag":[1-9]'; then zero=0; else zero=$((zero + 1)); fi
    [ "$zero" -ge 7 ] && return 0
    sleep 1
  done
  echo "node on $port still behind after 2 minutes" >&2
}

# fresh_pg_db ADMIN_URL NAME -> prints the URL of a new, empty database (or nothing if unreachable)
fresh_pg_db() {
  local admin=$1 name=$2
  psql "$admin" -qc 'select 1' >/dev/null 2>&1 || return 0
  psql "$admin" -qc "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null 2>&1
  psql "$admin" -qc "CREATE DATABASE $name" >/dev/null
  echo "${admin%/*}/$name"
}

# wrk_row LABEL URL [TOKEN]
wrk_row() {
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

table_header() {
  echo
  echo "wrk -t2 -c$CONN -d${DUR}s --latency, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "| request | req/s | p50 | p99 | non-2xx |"
  echo "|---|---|---|---|---|"
}
