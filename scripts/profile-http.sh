#!/usr/bin/env bash
# Where a request's CPU goes: runs bqai (the `profiling` build: dist + symbols) on the
# embedded default, loads one endpoint with wrk, and records the server with `perf` (Debian's
# linux-perf) meanwhile. Prints the hottest functions by self time and the heaviest call
# paths; `perf report -i $OUT/perf.data` explores the rest. Bounded: loopback, fixed duration.
#
#   WHAT=query   the result-cache hit of POST /api/v1/query (default)
#   WHAT=schema  the cached table schema GET
#   AUTH=1       API keys on (every call authenticated and audited)
#   BIN=...      profile this binary (it needs symbols) instead of building one
#   OUT=dir      where perf.data and the reports go (default: a temporary directory)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-8}
CONNECTIONS=${CONNECTIONS:-32}
PORT=${PORT:-18085}
WHAT=${WHAT:-query}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/bqai/target}"
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
command -v perf >/dev/null || { echo "perf is not installed (apt-get install linux-perf)" >&2; exit 1; }
. scripts/bench-lib.sh
bench_binary profiling
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
data=$(mktemp -d)
auth=()
if [[ -n "${AUTH:-}" ]]; then
  export BQAI__AUTH__MODE=api_key
  KEY=$(bench_key "$data" profile admin)
  export KEY
  auth=(-H "Authorization: Bearer $KEY")
fi
BQAI__SERVER__REQUESTS_PER_MINUTE=0 BQAI__LOG__LEVEL=warn \
  "$bin" serve --port "$PORT" --data-dir "$data" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.2; done
B="http://127.0.0.1:$PORT"
lua="$out/post.lua"
cat > "$lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("BODY")
if os.getenv("KEY") then wrk.headers["Authorization"] = "Bearer " .. os.getenv("KEY") end
LUA
case "$WHAT" in
  query)
    export BODY='{"sql":"SELECT country, COUNT(*) AS n FROM shop.customers GROUP BY country"}'
    curl -s -X POST "$B/api/v1/query" "${auth[@]}" -H 'Content-Type: application/json' -d "$BODY" >/dev/null
    load=(-s "$lua" "$B/api/v1/query") ;;
  schema)
    curl -s "${auth[@]}" "$B/api/v1/datasets/shop/tables/orders" >/dev/null
    load=("${auth[@]}" "$B/api/v1/datasets/shop/tables/orders") ;;
  *) echo "WHAT must be query or schema" >&2; exit 1 ;;
esac
# Warm up, then record the server for the middle of the run.
wrk -t2 -c"$CONNECTIONS" -d2s "${load[@]}" >/dev/null
wrk -t2 -c"$CONNECTIONS" -d"$((DURATION + 2))s" --latency "${load[@]}" > "$out/wrk.txt" &
wrk_pid=$!
sleep 1
perf record -F 999 -g --call-graph dwarf,16384 -p "$pid" -o "$out/perf.data" -- sleep "$DURATION" 2>/dev/null
wait $wrk_pid
sed -n '/Latency/,/Transfer/p' "$out/wrk.txt"
perf report -i "$out/perf.data" --no-children --no-inline -g none --sort symbol --percent-limit 0.7 --stdio 2>/dev/null | sed -E "s/ +- +- *$//; s/ +$//" |
  grep -E '^ +[0-9]' > "$out/self.txt" || true
perf report -i "$out/perf.data" --children --no-inline -g none --sort symbol --percent-limit 2 --stdio 2>/dev/null | sed -E "s/ +- +- *$//; s/ +$//" |
  grep -E '^ +[0-9]' > "$out/children.txt" || true
echo "### hottest by self time ($out/self.txt)"; head -40 "$out/self.txt"
echo "### heaviest including callees ($out/children.txt)"; head -60 "$out/children.txt"
