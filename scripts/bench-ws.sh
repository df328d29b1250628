#!/usr/bin/env bash
# WebSocket measurements for docs/benchmarks.md: the server's memory (RSS) with SESSIONS idle
# WebSocket sessions open, and the time from `ask` to the first `status` event and to `result`
# on the embedded default (p50/p95 over ASKS sequential asks, after a warm-up). Starts bqai on
# a free loopback port with its own data directory, runs the load tool
# (bins/bqai/examples/ws_load.rs), and stops the server. Bounded: loopback, fixed counts.
#
#   PROFILE=dist (default) | release | dev     which build to measure (dist: what images ship)
#   SESSIONS=1000  ASKS=200  PORT=18090
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/bqai/target}"
PROFILE=${PROFILE:-dist}
SESSIONS=${SESSIONS:-1000}
ASKS=${ASKS:-200}
PORT=${PORT:-18090}
dir=$([[ $PROFILE == dev ]] && echo debug || echo "$PROFILE")
cargo build --locked --profile "$PROFILE" -p bqai --bins --example ws_load
bin="$CARGO_TARGET_DIR/$dir/bqai"
load="$CARGO_TARGET_DIR/$dir/examples/ws_load"

ulimit -n 8192
data=$(mktemp -d)
BQAI__SERVER__REQUESTS_PER_MINUTE=0 BQAI__LOG__LEVEL=warn "$bin" serve --port "$PORT" --data-dir "$data" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.2; done
curl -sf "http://127.0.0.1:$PORT/health" >/dev/null || { echo "bqai did not come up" >&2; exit 1; }
url="ws://127.0.0.1:$PORT/api/v1/ws/agent"
rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }

"$load" ask "$url" 20 >/dev/null                      # warm-up: schemas, caches, first plans
echo "server RSS after warm-up: $(rss) KiB"
"$load" ask "$url" "$ASKS"
before=$(rss)
out=$(mktemp)
"$load" idle "$url" "$SESSIONS" 10 >"$out" &
loader=$!
for _ in $(seq 1 600); do grep -q '^open' "$out" && break; sleep 0.2; done
cat "$out"
sleep 3                                              # every session configured and idle
during=$(rss)
wait "$loader"
echo "server RSS: ${before} KiB before, ${during} KiB with ${SESSIONS} idle sessions" \
  "($(( (during - before) / SESSIONS )) KiB per session)"
