#!/usr/bin/env bash
# What MCP costs over the REST call it wraps, on the embedded default (API keys on, as an agent
# would use it): wrk against `POST /api/v1/query` and `POST /mcp` tools/call run_query, both
# answered from the result cache, with MCP sessions on (server-sent events) and off (plain
# JSON); then `bqai mcp` over stdio, sequential tool calls timed by a small JSON-RPC driver
# (tests/mcp/stdio_latency.py). Bounded: loopback only, fixed duration. Results go in
# docs/benchmarks.md.
#
#   PROFILE=release   the cargo profile to build (default dist, as images are built)
#   BIN=path/to/bqai  run this binary instead of building one
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/bqai/target}"
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
PROFILE=${PROFILE:-dist}
. scripts/bench-lib.sh
bench_binary "$PROFILE"

data=$(mktemp -d)
export BQAI__AUTH__MODE=api_key BQAI__LOG__LEVEL=warn BQAI__SERVER__REQUESTS_PER_MINUTE=0
KEY=$(bench_key "$data" bench analyst)
export KEY
pids=()
lua=$(mktemp)
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$data" "$lua"' EXIT

serve() { # port, then environment assignments
  local port=$1; shift
  env "$@" "$bin" serve --port "$port" --data-dir "$data" &
  pids+=($!)
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && return; sleep 0.2; done
  echo "the server on $port did not start" >&2; exit 1
}

cat > "$lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2025-06-18"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("KEY")
if os.getenv("SESSION") and os.getenv("SESSION") ~= "" then
  wrk.headers["Mcp-Session-Id"] = os.getenv("SESSION")
end
wrk.body = os.getenv("BODY")
LUA
run() { # name, then wrk arguments
  echo "### $1"; shift
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$lua" "$@" |
    grep -E 'Latency  |50%|99%|Requests/sec|Non-2xx|Socket errors'
}

SQL='SELECT country, COUNT(*) AS n FROM shop.customers GROUP BY country'
REST_BODY="{\"sql\":\"$SQL\"}"
CALL_BODY="{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"run_query\",\"arguments\":{\"sql\":\"$SQL\"}}}"
INIT='{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}'

serve 18181
serve 18182 BQAI__MCP__SESSIONS=false
# Warm both caches of both servers (each has its own).
for port in 18181 18182; do
  curl -s -X POST "http://127.0.0.1:$port/api/v1/query" -H "Authorization: Bearer $KEY" \
    -H 'Content-Type: application/json' -d "$REST_BODY" >/dev/null
done
SESSION=$(curl -s -D - -o /dev/null -X POST http://127.0.0.1:18181/mcp -H "Authorization: Bearer $KEY" \
  -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' -d "$INIT" |
  tr -d '\r' | sed -n 's/^mcp-session-id: //Ip')
curl -s -o /dev/null -X POST http://127.0.0.1:18181/mcp -H "Authorization: Bearer $KEY" -H "Mcp-Session-Id: $SESSION" \
  -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
  -H 'MCP-Protocol-Version: 2025-06-18' -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'
export SESSION

echo "api keys on (every call authenticated, audited); result cache hits; $(nproc) cores"
BODY=$REST_BODY run "POST /api/v1/query (REST), $CONNECTIONS connections" http://127.0.0.1:18181/api/v1/query
BODY=$CALL_BODY SESSION= run "POST /mcp tools/call run_query, mcp.sessions = false (JSON), $CONNECTIONS connections" http://127.0.0.1:18182/mcp
# One session is one agent's conversation: its requests come one at a time. Both modes, one
# connection, sequential calls.
CONNECTIONS=1 THREADS=1 BODY=$REST_BODY run "POST /api/v1/query (REST), 1 connection" http://127.0.0.1:18181/api/v1/query
CONNECTIONS=1 THREADS=1 BODY=$CALL_BODY run "POST /mcp tools/call run_query, one session (server-sent events), 1 connection" http://127.0.0.1:18181/mcp
CONNECTIONS=1 THREADS=1 BODY=$CALL_BODY SESSION= run "POST /mcp tools/call run_query, mcp.sessions = false (JSON), 1 connection" http://127.0.0.1:18182/mcp
# 32 connections on one session: what one session's requests cost when they pile up.
BODY=$CALL_BODY run "POST /mcp tools/call run_query, one session shared by $CONNECTIONS connections" http://127.0.0.1:18181/mcp

echo "### bqai mcp (stdio), sequential tool calls"
python3 tests/mcp/stdio_latency.py "$bin" "$data" "$KEY"
