#!/usr/bin/env bash
# History analytics over 1,000,000 history rows (docs/benchmarks.md, "History analytics").
#
#   scripts/bench-analytics.sh [endpoints]   time the /api/v1/analytics endpoints
#   scripts/bench-analytics.sh insert        time the history insert path, this tree against
#                                            the commit BEFORE (crates/store/examples/history_insert.rs)
#
# endpoints: for each backend in BACKENDS, a fresh store is migrated (`bqai keys create`, which
# also makes the admin key), filled by scripts/gen-history.py with ROWS rows over the DAYS days
# before now (SQLite: executemany in one transaction; PostgreSQL: CSV and \copy, then
# VACUUM ANALYZE — autovacuum is off on the development VM, and would have analysed the table
# after such a load), then bqai is started with API keys on and each endpoint is asked once
# with curl (status and the first bytes printed: it must be 200), REQUESTS times in a row with
# curl (p50, p99 of time_total), and with wrk -t1 -c1 for DURATION seconds (p50, p99).
#
#   ROWS=1000000 DAYS=90 BACKENDS="sqlite postgres" REQUESTS=20 DURATION=10 PORT=18091
#   PG_URL=postgres://postgres@127.0.0.1/bqai_analytics   created if missing, emptied first
#   PROFILE=release                                       cargo profile of the bqai binary
#   KEEP=1      keep the SQLite data directory (printed) instead of deleting it
#
# insert: builds the example in this tree and in a worktree of BEFORE (default 5417d20, the
# commit before the analytics change) and runs both RUNS times (default 3), interleaved, on SQLite (a temporary
# file) and on PostgreSQL (PG_INSERT_URL, default postgres://postgres@127.0.0.1/bqai_insert,
# emptied before every run), N entries each (default 20000); prints the medians.
#
# Loopback only; client, server and PostgreSQL share the machine's cores.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
MODE=${1:-endpoints}
ROWS=${ROWS:-1000000}
DAYS=${DAYS:-90}
BACKENDS=${BACKENDS:-sqlite postgres}
REQUESTS=${REQUESTS:-20}
DURATION=${DURATION:-10}
PORT=${PORT:-18091}
PROFILE=${PROFILE:-release}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1/bqai_analytics}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/bqai/target}"
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

# Creates the database of a postgres:// URL if it does not exist (connecting to `postgres`).
ensure_db() {
  local url=$1 name=${1##*/}
  name=${name%%\?*}
  local admin=${url%/*}/postgres
  if [[ $(psql "$admin" -Atc "SELECT 1 FROM pg_database WHERE datname = '$name'") != 1 ]]; then
    psql "$admin" -q -c "CREATE DATABASE \"$name\""
  fi
}

median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

# ---------------------------------------------------------------------------------------------
insert_mode() {
  local before=${BEFORE:-5417d20} runs=${RUNS:-3} n=${N:-20000}
  local pg=${PG_INSERT_URL:-postgres://postgres@127.0.0.1/bqai_insert}
  local wt=${BEFORE_TREE:-/tmp/bqai-before}
  if [[ ! -d "$wt" ]]; then
    git worktree add --detach "$wt" "$before" >/dev/null
  fi
  mkdir -p "$wt/crates/store/examples"
  cp crates/store/examples/history_insert.rs "$wt/crates/store/examples/"
  # One target directory for both trees: the registry crates are built once, the workspace
  # crates apart (their paths differ); the example binaries share a name, so each is copied
  # away right after its build.
  local bins
  bins=$(mktemp -d)
  cargo build --release --locked -p bqai-store --example history_insert
  cp "$CARGO_TARGET_DIR/release/examples/history_insert" "$bins/after"
  (cd "$wt" && cargo build --release --locked -p bqai-store --example history_insert)
  cp "$CARGO_TARGET_DIR/release/examples/history_insert" "$bins/before"
  local after_bin="$bins/after" before_bin="$bins/before"
  ensure_db "$pg"
  local out
  out=$(mktemp)
  echo "insert path: $n entries per run, $runs runs; before = $(git rev-parse --short "$before"), after = $(git rev-parse --short HEAD) + working tree"
  for run in $(seq 1 "$runs"); do
    for backend in sqlite postgres; do
      for tree in before after; do
        local bin=$after_bin url=()
        [[ $tree == before ]] && bin=$before_bin
        [[ $backend == postgres ]] && url=("$pg" --fresh)
        local line
        line=$(STORE_URL= "$bin" "$n" "${url[@]}" | tee /dev/stderr | grep '^RESULT')
        echo "$tree $backend $run $line" >> "$out"
      done
    done
  done
  echo
  printf '%-9s %-7s %12s %10s %10s %10s\n' backend tree "inserts/s" p50_us p90_us p99_us
  for backend in sqlite postgres; do
    for tree in before after; do
      local row=()
      for field in per_s p50_us p90_us p99_us; do
        row+=("$(awk -v t="$tree" -v b="$backend" -v f="$field" '$1 == t && $2 == b {
          for (i = 4; i <= NF; i++) { split($i, kv, "="); if (kv[1] == f) print kv[2] } }' "$out" | median)")
      done
      printf '%-9s %-7s %12s %10s %10s %10s   (median of %s runs; all: %s)\n' "$backend" "$tree" "${row[@]}" "$runs" \
        "$(awk -v t="$tree" -v b="$backend" '$1 == t && $2 == b { for (i = 4; i <= NF; i++) if ($i ~ /^per_s=/) { sub("per_s=", "", $i); printf "%s ", $i } }' "$out")"
    done
  done
  rm -rf "$out" "$bins"
}

# ---------------------------------------------------------------------------------------------
# One endpoint: a checked curl, REQUESTS curls in a row, then wrk. Prints one table row.
time_endpoint() {
  local backend=$1 name=$2 path=$3 url="http://127.0.0.1:$PORT$3"
  local body code first
  body=$(mktemp)
  read -r code first < <(curl -s -o "$body" -w '%{http_code} %{time_total}\n' -H "Authorization: Bearer $KEY" "$url")
  echo "  $name: HTTP $code, first request $(awk -v t="$first" 'BEGIN {printf "%.1f", t * 1000}') ms; $(head -c 240 "$body" | tr '\n' ' ')" >&2
  if [[ $code != 200 ]]; then
    printf '| %s | %s | **HTTP %s** | | | | | |\n' "$backend" "$name" "$code"
    rm -f "$body"
    return
  fi
  local times p50 p99
  times=$(for _ in $(seq 1 "$REQUESTS"); do
    curl -s -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $KEY" "$url"
  done | awk '{printf "%.2f\n", $1 * 1000}' | sort -n)
  p50=$(echo "$times" | median)
  p99=$(echo "$times" | awk '{a[NR] = $1} END {i = int(NR * 0.99 + 0.999); if (i > NR) i = NR; print a[i]}')
  local wrk_out w50 w99 rps non2xx
  wrk_out=$(wrk -t1 -c1 -d"${DURATION}s" --latency -H "Authorization: Bearer $KEY" "$url")
  w50=$(echo "$wrk_out" | awk '$1 == "50%" {print $2}')
  w99=$(echo "$wrk_out" | awk '$1 == "99%" {print $2}')
  rps=$(echo "$wrk_out" | awk '/^Requests\/sec/ {print $2}')
  non2xx=$(echo "$wrk_out" | awk '/Non-2xx/ {print $NF}')
  printf '| %s | %s | %.1f ms | %s ms | %s ms | %s | %s | %s |\n' "$backend" "$name" \
    "$(awk -v t="$first" 'BEGIN {print t * 1000}')" "$p50" "$p99" "$w50" "$w99" "$rps${non2xx:+ ($non2xx non-2xx!)}"
  rm -f "$body"
}

endpoints_mode() {
  command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
  cargo build --profile "$PROFILE" --locked -p bqai
  local bin="$CARGO_TARGET_DIR/$PROFILE/bqai"
  local results
  results=$(mktemp)
  echo "| backend | endpoint | first request | curl p50 ($REQUESTS in a row) | curl p99 | wrk p50 (-c1, ${DURATION} s) | wrk p99 | wrk req/s |" > "$results"
  echo "|---|---|---|---|---|---|---|---|" >> "$results"
  for backend in $BACKENDS; do
    local data store_url=
    data=$(mktemp -d /tmp/bqai-analytics.XXXXXX)
    if [[ $backend == postgres ]]; then
      store_url=$PG_URL
      ensure_db "$PG_URL"
      psql "$PG_URL" -q -c 'DROP SCHEMA public CASCADE; CREATE SCHEMA public;' >/dev/null
    fi
    export BQAI__AUTH__MODE=api_key BQAI__STORE__URL="$store_url"
    # Migrates the store (open_store) and makes the admin key.
    KEY=$("$bin" keys create --data-dir "$data" --name bench --role admin --json 2>/dev/null |
      sed -n 's/.*"key": "\(bqai_[^"]*\)".*/\1/p')
    [[ -n $KEY ]] || { echo "bqai keys create gave no key" >&2; exit 1; }
    export KEY
    local t0=$SECONDS top
    echo "== $backend: loading $ROWS rows over $DAYS days" >&2
    if [[ $backend == sqlite ]]; then
      python3 scripts/gen-history.py --rows "$ROWS" --days "$DAYS" --sqlite "$data/bqai.db" --progress
      top=$(sqlite3 "$data/bqai.db" "SELECT principal FROM query_history WHERE principal IS NOT NULL GROUP BY principal ORDER BY count(*) DESC LIMIT 1")
    else
      local cols nn csv
      cols=$(psql "$PG_URL" -Atc "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'query_history'")
      nn=$(psql "$PG_URL" -Atc "SELECT string_agg(column_name, ',') FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'query_history' AND is_nullable = 'NO'")
      csv=$(mktemp -d)
      python3 scripts/gen-history.py --rows "$ROWS" --days "$DAYS" --csv-dir "$csv" --columns "$cols" --not-null "$nn" --progress
      psql "$PG_URL" -q -v ON_ERROR_STOP=1 -c "\\copy query_history($cols) FROM '$csv/query_history.csv' CSV"
      if [[ $(psql "$PG_URL" -Atc "SELECT to_regclass('public.query_history_tables') IS NOT NULL") == t ]]; then
        psql "$PG_URL" -q -v ON_ERROR_STOP=1 -c "\\copy query_history_tables(query_id, table_name) FROM '$csv/query_history_tables.csv' CSV"
      fi
      rm -rf "$csv"
      psql "$PG_URL" -q -c 'VACUUM ANALYZE'
      top=$(psql "$PG_URL" -Atc "SELECT principal FROM query_history WHERE principal IS NOT NULL GROUP BY principal ORDER BY count(*) DESC LIMIT 1")
    fi
    local size
    if [[ $backend == sqlite ]]; then
      size="$(du -sh "$data" | cut -f1) on disk"
    else
      size="database $(psql "$PG_URL" -Atc "SELECT pg_size_pretty(pg_database_size(current_database()))")"
    fi
    echo "   loaded in $((SECONDS - t0)) s; $size" >&2

    # Retention off: the generated rows reach back the whole default retention (90 days), and
    # purges are not what is measured here.
    BQAI__SERVER__REQUESTS_PER_MINUTE=0 BQAI__LOG__LEVEL=warn BQAI__STORE__HISTORY_RETENTION_DAYS=0 \
      "$bin" serve --port "$PORT" --data-dir "$data" &
    local pid=$!
    trap "kill $pid 2>/dev/null; wait $pid 2>/dev/null" EXIT
    for _ in $(seq 1 150); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.2; done
    sleep 2
    local from to
    from=$(date -u -d '30 days ago' +%Y-%m-%dT%H:%M:%SZ)
    to=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    echo "== $backend: endpoints (load average $(cut -d' ' -f1-3 /proc/loadavg); principal for the narrowed summary: $top)" >&2
    {
      time_endpoint "$backend" "summary, 30 days by day" "/api/v1/analytics/summary?group_by=day&from=$from&to=$to"
      time_endpoint "$backend" "summary by principal (7-day default)" "/api/v1/analytics/summary?group_by=principal"
      time_endpoint "$backend" "summary, 30 days by day, one principal" "/api/v1/analytics/summary?group_by=day&from=$from&to=$to&principal=$top"
      time_endpoint "$backend" "popular?kind=sql" "/api/v1/analytics/popular?kind=sql"
      time_endpoint "$backend" "popular?kind=ask" "/api/v1/analytics/popular?kind=ask"
      time_endpoint "$backend" "slowest" "/api/v1/analytics/slowest"
      time_endpoint "$backend" "expensive" "/api/v1/analytics/expensive"
      time_endpoint "$backend" "errors" "/api/v1/analytics/errors"
      time_endpoint "$backend" "tables" "/api/v1/analytics/tables"
    } >> "$results"
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    trap - EXIT
    if [[ -n ${KEEP:-} ]]; then echo "   kept $data" >&2; else rm -rf "$data"; fi
  done
  echo
  cat "$results"
  rm -f "$results"
}

case $MODE in
  endpoints) endpoints_mode ;;
  insert) insert_mode ;;
  *) echo "usage: $0 [endpoints|insert]" >&2; exit 2 ;;
esac
