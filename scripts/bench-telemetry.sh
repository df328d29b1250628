#!/usr/bin/env bash
# What traces cost: one bqai binary on the embedded default (auth off, metrics always on),
# with traces off, then exporting every trace (sampler 1.0) and 1% of them (0.01) over
# OTLP/HTTP to a local sink that accepts and discards, alternated ROUNDS times. wrk on
# GET /health (a probe: never traced), a cached GET /api/v1/datasets (the cheapest traced
# request) and a cached POST /api/v1/query (docs/benchmarks.md, "Telemetry cost").
#
#   scripts/bench-telemetry.sh [BIN]      # default: target/release/bqai
#   ROUNDS=2 DURATION=8 CONNECTIONS=32 PORT=18095 SINK_PORT=18096
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-${CARGO_TARGET_DIR:-/root/.cache/bqai/target}/release/bqai}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-8}
CONNECTIONS=${CONNECTIONS:-32}
PORT=${PORT:-18095}
SINK_PORT=${SINK_PORT:-18096}

# An OTLP/HTTP sink: 200 to every POST, body read and dropped (threaded, so it never makes
# the exporter wait).
python3 - "$SINK_PORT" <<'PY' &
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class Sink(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
PY
sink=$!
trap 'kill $sink 2>/dev/null || true' EXIT

lua=$(mktemp --suffix=.lua)
cat > "$lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"sql": "SELECT country, COUNT(*) AS customers FROM shop.customers GROUP BY country"}'
LUA

echo "| round | traces | path | req/s | p50 | p99 |"
echo "|---|---|---|---|---|---|"
for round in $(seq 1 "$ROUNDS"); do
  for mode in off 1.0 0.01; do
    data=$(mktemp -d)
    env=(BQAI__SERVER__REQUESTS_PER_MINUTE=0 BQAI__LOG__LEVEL=warn)
    if [[ $mode != off ]]; then
      env+=(BQAI__TELEMETRY__OTLP_ENDPOINT="http://127.0.0.1:$SINK_PORT" BQAI__TELEMETRY__SAMPLER_RATIO="$mode")
    fi
    env "${env[@]}" "$BIN" serve --port "$PORT" --data-dir "$data" >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health/live" >/dev/null && break; sleep 0.2; done
    curl -sf -X POST "http://127.0.0.1:$PORT/api/v1/query" -H 'Content-Type: application/json' \
      -d '{"sql": "SELECT country, COUNT(*) AS customers FROM shop.customers GROUP BY country"}' >/dev/null
    curl -sf "http://127.0.0.1:$PORT/api/v1/datasets" >/dev/null
    for path in /health /api/v1/datasets /api/v1/query; do
      script=()
      [[ $path == /api/v1/query ]] && script=(-s "$lua")
      wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency "${script[@]}" "http://127.0.0.1:$PORT$path" |
        awk -v r="$round" -v m="$mode" -v p="$path" \
          '/^Requests\/sec/ {rps = $2} $1 == "50%" {p50 = $2} $1 == "99%" {p99 = $2}
           /Non-2xx/ {bad = $NF} END {printf "| %s | %s | %s | %s%s | %s | %s |\n", r, m, p, rps, bad ? " (" bad " non-2xx!)" : "", p50, p99}'
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -rf "$data"
  done
done
rm -f "$lua"
