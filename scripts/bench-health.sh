#!/usr/bin/env bash
# Unauthenticated health traffic against bqai configured for BigQuery (the EMULATOR, not
# BigQuery): wrk on /health (and /health/ready when the binary has it) and how many BigQuery
# calls (`datasets.list`, read off the emulator's request log) the traffic caused. Results go
# in docs/benchmarks.md ("Health probes").
#
#   scripts/bench-health.sh                 the release build of this tree
#   scripts/bench-health.sh BIN [BIN…]      given binaries, one after the other (before/after)
#
#   DURATION=10 CONNECTIONS=16 PORT=18093
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-16}
PORT=${PORT:-18093}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/bqai/target}"
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }

endpoint=$(scripts/bqemulator.sh)
log=$(ls -t "$HOME"/.cache/bqai/tools/bqemu/bqemulator-*.log | head -1)
if [[ $# -eq 0 ]]; then
  cargo build --release --locked -p bqai
  set -- "$CARGO_TARGET_DIR/release/bqai"
fi
dataset_lists() { grep -c '"path": "/bigquery/v2/projects/test-project/datasets",' "$log" || true; }

echo "| binary | path | req/s | p50 | p99 | non-2xx | BigQuery datasets.list calls |"
echo "|---|---|---|---|---|---|---|"
for bin in "$@"; do
  data=$(mktemp -d)
  BQAI__WAREHOUSE__KIND=bigquery BQAI__WAREHOUSE__PROJECT=test-project \
    BQAI__WAREHOUSE__ENDPOINT="$endpoint" BQAI__WAREHOUSE__CREDENTIALS='{type="none"}' \
    BQAI__SERVER__REQUESTS_PER_MINUTE=0 BQAI__LOG__LEVEL=warn \
    "$bin" serve --port "$PORT" --data-dir "$data" &
  pid=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.2; done
  for path in /health /health/ready; do
    if [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT$path") == 404 ]]; then
      continue
    fi
    sleep 2
    before=$(dataset_lists)
    out=$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency "http://127.0.0.1:$PORT$path")
    sleep 1
    calls=$(( $(dataset_lists) - before ))
    rps=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
    echo "| $(basename "$bin") | $path | $rps | $p50 | $p99 | ${non2xx:-0} | $calls |"
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$data"
done
