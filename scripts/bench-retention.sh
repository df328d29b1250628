#!/usr/bin/env bash
# Retention under sustained load (issue 22): DURATION seconds of mixed traffic with wrk against
# a bqai with API keys on (every call audited, every query in history), sampling the store's
# size every SAMPLE seconds. Run it twice — with a short retention and with retention off —
# to see the size level off and to compare latency with and without purges.
#
#   RETENTION_DAYS=0.0014   history and audit kept ~2 minutes (0: keep forever, no purge)
#   INTERVAL=30             store.maintenance_interval_secs
#   DURATION=600 SAMPLE=30 CONNECTIONS=16 THREADS=2
#   STORE_URL=postgres://postgres@127.0.0.1/bqai_retention   PostgreSQL instead of SQLite
#                                                            (the database must exist; it is
#                                                            emptied first)
#   PROFILE=release        the cargo profile to build (dist for numbers comparable with
#                          bench-http.sh; release builds faster)
#   BIN=path/to/bqai       run this binary instead of building one
#
# Prints one line per sample (elapsed s, bytes of the SQLite files on disk, then the server's
# own last measurement: store bytes, free bytes, history rows, audit rows) and wrk's latency
# distribution. Loopback only, bounded by DURATION. Results go in
# docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-600}
SAMPLE=${SAMPLE:-30}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=${THREADS:-2}
PORT=${PORT:-18090}
RETENTION_DAYS=${RETENTION_DAYS:-0.0014}
INTERVAL=${INTERVAL:-30}
PROFILE=${PROFILE:-release}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/bqai/target}"

command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
. scripts/bench-lib.sh
bench_binary "$PROFILE"
data=$(mktemp -d)
if [[ -n "${STORE_URL:-}" ]]; then
  psql "$STORE_URL" -q -c 'DROP SCHEMA public CASCADE; CREATE SCHEMA public;' >/dev/null
fi
export BQAI__AUTH__MODE=api_key BQAI__STORE__URL="${STORE_URL:-}"
KEY=$(bench_key "$data" bench admin)
export KEY
BQAI__SERVER__REQUESTS_PER_MINUTE=0 BQAI__LOG__LEVEL=warn \
  BQAI__STORE__HISTORY_RETENTION_DAYS="$RETENTION_DAYS" \
  BQAI__AUTH__AUDIT_RETENTION_DAYS="$RETENTION_DAYS" \
  BQAI__STORE__MAINTENANCE_INTERVAL_SECS="$INTERVAL" \
  "$bin" serve --port "$PORT" --data-dir "$data" &
pid=$!
lua=$(mktemp)
wrk_pid=
trap 'kill $wrk_pid $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data" "$lua" "$lua.out"' EXIT
B="http://127.0.0.1:$PORT"
for _ in $(seq 1 100); do curl -sf "$B/health" >/dev/null && break; sleep 0.2; done

# The mix, per 10 requests: 3 catalog reads, 1 history page, 3 cached queries, 2 distinct
# (uncached) queries, 1 repeated question.
cat > "$lua" <<'LUA'
local n = 0
local key = os.getenv("KEY")
local json = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. key }
local get = { ["Authorization"] = "Bearer " .. key }
request = function()
  n = n + 1
  local k = n % 10
  if k < 2 then return wrk.format("GET", "/api/v1/datasets/shop/tables", get)
  elseif k == 2 then return wrk.format("GET", "/api/v1/datasets/shop/tables/orders", get)
  elseif k == 3 then return wrk.format("GET", "/api/v1/history?page_size=20", get)
  elseif k < 7 then
    return wrk.format("POST", "/api/v1/query", json,
      '{"sql":"SELECT country, COUNT(*) AS n FROM shop.customers GROUP BY country"}')
  elseif k < 9 then
    return wrk.format("POST", "/api/v1/query", json,
      '{"sql":"SELECT COUNT(*) + ' .. n .. ' AS n FROM shop.customers"}')
  else
    return wrk.format("POST", "/api/v1/ask", json, '{"question":"total revenue by country in 2024"}')
  end
end
LUA

sample() {
  python3 - "$B" "$KEY" <<'PY'
import json, sys, urllib.request
req = urllib.request.Request(sys.argv[1] + "/health")
h = json.load(urllib.request.urlopen(req))
s = h.get("store") or {}
r = s.get("rows", {})
print(s.get("size_bytes"), s.get("free_bytes"), r.get("query_history"), r.get("audit_log"))
PY
}

echo "retention: ${RETENTION_DAYS} days; maintenance every ${INTERVAL}s; store: ${STORE_URL:-sqlite}; ${CONNECTIONS} connections for ${DURATION}s"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$lua" "$B" > "$lua.out" &
wrk_pid=$!
start=$(date +%s)
echo "elapsed_s files_bytes | size_bytes free_bytes history_rows audit_rows (as last measured by the server)"
while kill -0 "$wrk_pid" 2>/dev/null; do
  sleep "$SAMPLE"
  files=$({ stat -c %s "$data"/bqai.db* 2>/dev/null || true; } | awk '{s += $1} END {print s + 0}')
  echo "$(( $(date +%s) - start )) $files | $(sample)"
done
wait "$wrk_pid"
sed -n '/Latency/,/Transfer/p' "$lua.out"
rm -f "$lua.out"
