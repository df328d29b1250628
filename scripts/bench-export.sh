#!/usr/bin/env bash
# Export throughput and memory (docs/benchmarks.md, "Exports"): one fresh `bqai serve` on the
# embedded default per format and size, a `POST /api/v1/exports?mode=inline` of generated rows
# (a cross join of the demo's orders and products: 8 mixed columns — ints, a float, a decimal,
# strings, a date, a timestamp) read by curl, the time and size curl saw, and the server's peak
# RSS (VmHWM) before and after. Then DataFusion's own CSV and Parquet writers on the same rows
# (bins/bqai/examples/export_ceiling.rs) as the ceiling.
#
# MODES="job" times export jobs instead: `?mode=job`, the status polled every 50 ms until the
# job ends, the file's bytes as the job reports them (written to <data-dir>/exports by the
# server's worker, not sent over HTTP).
#
#   scripts/bench-export.sh [BIN] [CEILING_BIN]   # default: target/dist/bqai, target/dist/examples/export_ceiling
#   SIZES="1000000 10000000" FORMATS="csv ndjson json xlsx parquet" MODES="inline job" PORT=18097
#   CEILING_RUN=0 skips the ceiling
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-/root/.cache/bqai/target}
BIN=${1:-$target/dist/bqai}
CEILING=${2:-$target/dist/examples/export_ceiling}
SIZES=${SIZES:-"1000000 10000000"}
FORMATS=${FORMATS:-"csv ndjson json xlsx parquet"}
MODES=${MODES:-inline}
RUN_CEILING=${CEILING_RUN:-1}
PORT=${PORT:-18097}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

statement() {
  local rows=$1 products=$(( ($1 + 99999) / 100000 ))
  echo "SELECT o.order_id * 1000 + p.product_id AS id, o.customer_id, o.order_date, CAST(o.order_date AS TIMESTAMP) + INTERVAL '90 minutes' AS placed_at, o.status, o.channel, p.unit_price * 1.5 AS amount, CAST(p.unit_price AS DECIMAL(12, 2)) AS price FROM shop.orders o CROSS JOIN shop.products p WHERE p.product_id <= $products LIMIT $rows"
}

hwm() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }

# One export job: submitted, polled until it ends; prints "seconds bytes status".
run_job() {
  local body=$1 start id status job
  start=$(date +%s.%N)
  id=$(curl -s -X POST "http://127.0.0.1:$PORT/api/v1/exports?mode=job" -H 'Content-Type: application/json' -d "$body" |
    python3 -c 'import json,sys; print(json.load(sys.stdin).get("export_id", ""))')
  [[ -n $id ]] || { echo "0 0 refused"; return; }
  while :; do
    job=$(curl -s "http://127.0.0.1:$PORT/api/v1/exports/$id")
    status=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["status"])' "$job")
    [[ $status == queued || $status == running ]] || break
    sleep 0.05
  done
  python3 -c 'import json,sys,time; j=json.loads(sys.argv[1]); print(time.time() - float(sys.argv[2]), j.get("bytes") or 0, j["status"])' "$job" "$start"
}

echo "| export | rows | seconds | rows/s | bytes | peak RSS before (MiB) | peak RSS after (MiB) |"
echo "|---|---|---|---|---|---|---|"
for rows in $SIZES; do
  for mode in $MODES; do
  for format in $FORMATS; do
    data=$(mktemp -d)
    BQAI__SERVER__REQUESTS_PER_MINUTE=0 BQAI__LOG__LEVEL=warn BQAI__EXPORT__MAX_ROWS=$rows \
      "$BIN" serve --port "$PORT" --data-dir "$data" >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 1 150); do curl -sf "http://127.0.0.1:$PORT/health/live" >/dev/null && break; sleep 0.2; done
    before=$(hwm "$pid")
    body=$(python3 -c 'import json,sys; print(json.dumps({"sql": sys.argv[1], "format": sys.argv[2]}))' "$(statement "$rows")" "$format")
    if [[ $mode == job ]]; then
      read -r took size code < <(run_job "$body")
      ok=succeeded
    else
      read -r took size code < <(curl -s -o "$out/export.$format" -w '%{time_total} %{size_download} %{http_code}\n' \
        -X POST "http://127.0.0.1:$PORT/api/v1/exports?mode=inline" -H 'Content-Type: application/json' -d "$body")
      ok=200
    fi
    after=$(hwm "$pid")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -rf "$data" "$out/export.$format"
    if [[ $code != "$ok" ]]; then echo "| $mode $format | $rows | $code | | | | |"; continue; fi
    awk -v m="$mode" -v f="$format" -v r="$rows" -v t="$took" -v s="$size" -v b="$before" -v a="$after" \
      'BEGIN { printf "| bqai %s %s | %d | %.2f | %.0f | %d | %.0f | %.0f |\n", m, f, r, t, r / t, s, b / 1024, a / 1024 }'
  done
  done
done
echo
if [[ $RUN_CEILING == 1 ]]; then
  # shellcheck disable=SC2086
  "$CEILING" "$out" $SIZES
fi
