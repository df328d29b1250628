#!/usr/bin/env bash
# p50 latency of a few calls through bqai configured for BigQuery, against the BigQuery
# EMULATOR (bqemulator on DuckDB) — not BigQuery: the numbers show bqai's own overhead per
# BigQuery API round trip on loopback, nothing about BigQuery's latency. Sequential requests
# (one at a time, N of each) with curl; no wrk needed. Results go in docs/benchmarks.md.
#
# The `shop` dataset must be in the emulator: `cargo test -p bqai --test api_bigquery` seeds
# it (once; it stays while the emulator runs).
#
#   N=50            requests per call
#   PROFILE=dist    build and run the binary images ship (opt-level 3 + thin LTO; default:
#                   debug, what the tests build; release is the quick README build)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-50}
PORT=${PORT:-18090}
PROFILE=${PROFILE:-debug}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/bqai/target}"

endpoint=$(scripts/bqemulator.sh)
if [[ "$PROFILE" != debug ]]; then
  cargo build --profile "$PROFILE" -p bqai
else
  cargo build -p bqai
fi
bin="$CARGO_TARGET_DIR/$PROFILE/bqai"
data=$(mktemp -d)
BQAI__WAREHOUSE__KIND=bigquery BQAI__WAREHOUSE__PROJECT=test-project \
  BQAI__WAREHOUSE__ENDPOINT="$endpoint" BQAI__WAREHOUSE__CREDENTIALS='{type="none"}' \
  BQAI__ASK__DEFAULT_DATASET=shop BQAI__SERVER__REQUESTS_PER_MINUTE=0 BQAI__LOG__LEVEL=warn \
  "$bin" serve --port "$PORT" --data-dir "$data" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.2; done
B="http://127.0.0.1:$PORT"

# Prints the median of N timings (ms) of one curl call; fails loudly on a non-200.
p50() {
  local out
  out=$(for _ in $(seq 1 "$N"); do
    curl -s -o /dev/null -w '%{http_code} %{time_total}\n' "$@"
  done)
  if grep -qv '^200 ' <<<"$out"; then
    echo "non-200 answers: $(grep -v '^200 ' <<<"$out" | head -1)" >&2
    exit 1
  fi
  awk '{print $2 * 1000}' <<<"$out" | sort -n | awk '{a[NR]=$1} END {printf "%.1f ms\n", a[int((NR+1)/2)]}'
}

json=(-H 'Content-Type: application/json' -X POST)
echo "bqai ($PROFILE build) → emulator at $endpoint, N=$N sequential requests, p50:"
echo "  emulator tables.get, direct (no bqai)           $(p50 "$endpoint/bigquery/v2/projects/test-project/datasets/shop/tables/orders")"
echo "  GET /api/v1/datasets/shop/tables/orders (cached) $(p50 "$B/api/v1/datasets/shop/tables/orders")"
echo "  GET …/products/preview?limit=10 (tabledata.list) $(p50 "$B/api/v1/datasets/shop/tables/products/preview?limit=10")"
echo "  POST /api/v1/query, use_cache=false               $(p50 "${json[@]}" "$B/api/v1/query" \
  -d '{"sql": "SELECT country, COUNT(*) AS n FROM shop.customers GROUP BY country", "use_cache": false}')"
echo "  POST /api/v1/query, result cache hit              $(p50 "${json[@]}" "$B/api/v1/query" \
  -d '{"sql": "SELECT country, COUNT(*) AS n FROM shop.customers GROUP BY country"}')"
