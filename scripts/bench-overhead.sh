#!/usr/bin/env bash
# Throughput of two bqai binaries side by side on the embedded default (auth off), alternated
# ROUNDS times so drift on the machine hits both: wrk on /health and on a cached catalog read.
# For the cost of a cross-cutting change (docs/benchmarks.md, "Request metrics").
#
#   scripts/bench-overhead.sh BEFORE_BIN AFTER_BIN
#   ROUNDS=2 DURATION=8 CONNECTIONS=32 PORT=18094
set -euo pipefail
[[ $# -eq 2 ]] || { echo "usage: $0 BEFORE_BIN AFTER_BIN" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-8}
CONNECTIONS=${CONNECTIONS:-32}
PORT=${PORT:-18094}
echo "| round | binary | path | req/s | p50 | p99 |"
echo "|---|---|---|---|---|---|"
for round in $(seq 1 "$ROUNDS"); do
  for bin in "$@"; do
    data=$(mktemp -d)
    BQAI__SERVER__REQUESTS_PER_MINUTE=0 BQAI__LOG__LEVEL=warn "$bin" serve --port "$PORT" --data-dir "$data" >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.2; done
    curl -sf "http://127.0.0.1:$PORT/api/v1/datasets" >/dev/null
    for path in /health /api/v1/datasets; do
      wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency "http://127.0.0.1:$PORT$path" |
        awk -v r="$round" -v b="$(basename "$bin")" -v p="$path" \
          '/^Requests\/sec/ {rps = $2} $1 == "50%" {p50 = $2} $1 == "99%" {p99 = $2}
           /Non-2xx/ {bad = $NF} END {printf "| %s | %s | %s | %s%s | %s | %s |\n", r, b, p, rps, bad ? " (" bad " non-2xx!)" : "", p50, p99}'
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -rf "$data"
  done
done
