#!/usr/bin/env bash
# HTTP load test of a running bqai on the embedded default, with wrk (apt-get install wrk).
# Starts a release build on a free port with its own data dir, warms it, measures six
# endpoints for DURATION seconds each with CONNECTIONS connections, and stops the server.
# Bounded by design: loopback only, fixed duration. Results go in docs/benchmarks.md.
#
#   CACHE_URL=redis://127.0.0.1:6379   run with the Redis cache and rate limiter
#   STORE_URL=postgres://postgres@127.0.0.1/bqai_bench   history in PostgreSQL (database must exist)
#   ONLY=query                          only the /health and /api/v1/query rows
#   AUTH=1                              API keys on: every call authenticated (an admin key
#                                       made with `bqai keys create`) and audited
#   BIGQUERY=1                          BigQuery on the emulator (scripts/bqemulator.sh; the
#                                       `shop` dataset seeded by the api_bigquery tests)
#                                       instead of the embedded engine
#   PROFILE=dist                        the cargo profile to build (release builds faster)
#   BIN=path/to/bqai                    run this binary instead of building one (before/after
#                                       comparisons of two builds)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
PORT=${PORT:-18080}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/bqai/target}"

command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
# By default the profile images are built with (Cargo.toml: dist = opt-level 3 + thin LTO).
PROFILE=${PROFILE:-dist}
. scripts/bench-lib.sh
bench_binary "$PROFILE"
if [[ -n "${BIGQUERY:-}" ]]; then
  endpoint=$(scripts/bqemulator.sh)
  export BQAI__WAREHOUSE__KIND=bigquery BQAI__WAREHOUSE__PROJECT=test-project \
    BQAI__WAREHOUSE__ENDPOINT="$endpoint" BQAI__WAREHOUSE__CREDENTIALS='{type="none"}' \
    BQAI__ASK__DEFAULT_DATASET=shop
fi
data=$(mktemp -d)
auth_args=()
if [[ -n "${AUTH:-}" ]]; then
  export BQAI__AUTH__MODE=api_key
  KEY=$(bench_key "$data" bench admin)
  export KEY
  auth_args=(-H "Authorization: Bearer $KEY")
fi
BQAI__SERVER__REQUESTS_PER_MINUTE=0 BQAI__LOG__LEVEL=warn \
  BQAI__CACHE__URL="${CACHE_URL:-}" BQAI__CACHE__REDIS_NAMESPACE="bench-$$:" \
  BQAI__STORE__URL="${STORE_URL:-}" \
  "$bin" serve --port "$PORT" --data-dir "$data" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.2; done

B="http://127.0.0.1:$PORT"
lua=$(mktemp)
cat > "$lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("BODY")
if os.getenv("KEY") then wrk.headers["Authorization"] = "Bearer " .. os.getenv("KEY") end
LUA

run() { # name, then wrk arguments
  local name=$1; shift
  echo "### $name"
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@" | sed -n '/Latency/,/Transfer/p'
}

warehouse=embedded
[[ -n "${BIGQUERY:-}" ]] && warehouse="BigQuery emulator"
echo "warehouse: $warehouse; cache: ${CACHE_URL:-in-process}; history: ${STORE_URL:-sqlite}; auth: ${AUTH:+api keys + audit}"
run "GET /health" "$B/health"
if [[ "${ONLY:-}" != query ]]; then
  run "GET /api/v1/datasets/shop/tables/orders (cached schema)" "${auth_args[@]}" "$B/api/v1/datasets/shop/tables/orders"
fi
BODY='{"sql":"SELECT country, COUNT(*) AS n FROM shop.customers GROUP BY country"}'
curl -s -X POST "$B/api/v1/query" "${auth_args[@]}" -H 'Content-Type: application/json' -d "$BODY" >/dev/null
BODY=$BODY run "POST /api/v1/query (result cache hit: plan cache + result cache)" -s "$lua" "$B/api/v1/query"
BODY='{"sql":"SELECT status, COUNT(*) AS n FROM shop.orders GROUP BY status","use_cache":false}' \
  run "POST /api/v1/query (uncached GROUP BY over 100k orders)" -s "$lua" "$B/api/v1/query"
if [[ "${ONLY:-}" == query ]]; then rm -f "$lua"; exit 0; fi
# The ask pipeline with the built-in planner: a repeated question (question cache + result
# cache: no generation, still guard + dry run + history), and fresh generation every time.
BODY='{"question":"total revenue by country in 2024"}'
curl -s -X POST "$B/api/v1/ask" "${auth_args[@]}" -H 'Content-Type: application/json' -d "$BODY" >/dev/null
BODY=$BODY run "POST /api/v1/ask (repeated question: question cache + result cache)" -s "$lua" "$B/api/v1/ask"
BODY='{"question":"total revenue by country in 2024","use_cache":false}' \
  run "POST /api/v1/ask (planner generates + runs a 3-table join, no caches)" -s "$lua" "$B/api/v1/ask"
rm -f "$lua"
