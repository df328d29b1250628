#!/usr/bin/env bash
# Paged results (`page_size` on POST /api/v1/query, then GET /api/v1/query/{id}/results):
# sequential requests against a running bqai, on the embedded engine and (WAREHOUSE=bigquery)
# on the BigQuery EMULATOR — the emulator's numbers show bqai's overhead per round trip on
# loopback, nothing about BigQuery's latency. Prints p50/p95 of:
#   - the whole result in one response (no paging), for comparison;
#   - a paged query's first page (on the embedded engine this includes spooling the rest);
#   - each next page, walking the whole result;
# and, from /metrics, the warehouse port calls the walk made (`read_result` on BigQuery: one
# getQueryResults call per page). Results go in docs/benchmarks.md.
#
# The BigQuery run needs `shop` in the emulator: `cargo test --test api_bigquery` seeds it.
#
#   WAREHOUSE=embedded|bigquery   which engine (default embedded)
#   N=20                          repetitions of each first request
#   ROWS=20000 PAGE=1000          rows of the paged result, rows per page
#   BIN=path/to/bqai              run this binary instead of building one
#   PROFILE=dist                  the cargo profile to build
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-18091}
N=${N:-20}
ROWS=${ROWS:-20000}
PAGE=${PAGE:-1000}
WAREHOUSE=${WAREHOUSE:-embedded}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/bqai/target}"
. scripts/bench-lib.sh
bench_binary "${PROFILE:-dist}"
data=$(mktemp -d)
env=(BQAI__SERVER__REQUESTS_PER_MINUTE=0 BQAI__LOG__LEVEL=warn)
if [[ "$WAREHOUSE" == bigquery ]]; then
  endpoint=$(scripts/bqemulator.sh)
  env+=(BQAI__WAREHOUSE__KIND=bigquery BQAI__WAREHOUSE__PROJECT=test-project
    BQAI__WAREHOUSE__ENDPOINT="$endpoint" "BQAI__WAREHOUSE__CREDENTIALS={type=\"none\"}")
fi
env "${env[@]}" "$bin" serve --port "$PORT" --data-dir "$data" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.2; done

python3 - "http://127.0.0.1:$PORT" "$N" "$ROWS" "$PAGE" "$WAREHOUSE" <<'PY'
import json, sys, time, urllib.request
base, n, rows, page, warehouse = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
sql = "SELECT order_id, product_id, quantity, unit_price FROM shop.order_items ORDER BY order_id, product_id"

def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    t = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as r:
        out = json.loads(r.read())
    return out, (time.perf_counter() - t) * 1000

def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * len(xs) + 0.5)) - 1)]

def warehouse_calls():
    text = urllib.request.urlopen(base + "/metrics").read().decode()
    calls = {}
    for line in text.splitlines():
        if line.startswith("bqai_warehouse_calls_total{"):
            op = line.split('operation="')[1].split('"')[0]
            calls[op] = calls.get(op, 0) + float(line.rsplit(" ", 1)[1])
    return calls

print(f"{warehouse}: {rows} rows of shop.order_items, pages of {page}, {n} runs")
whole = [call("POST", "/api/v1/query", {"sql": sql, "max_rows": min(rows, 10000), "use_cache": False})[1] for _ in range(n)]
print(f"  one response of {min(rows, 10000)} rows (no paging)   p50 {pct(whole, 50):7.1f} ms  p95 {pct(whole, 95):7.1f} ms")
firsts, nexts, walk_calls = [], [], []
for i in range(n):
    first, ms = call("POST", "/api/v1/query", {"sql": sql, "max_rows": rows, "page_size": page})
    firsts.append(ms)
    before = warehouse_calls()
    got, p = first["row_count"], first
    while p["next_page_token"]:
        p, ms = call("GET", f"/api/v1/query/{first['query_id']}/results?page_token={p['next_page_token']}")
        nexts.append(ms)
        got += p["row_count"]
    after = warehouse_calls()
    walk_calls.append({k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)})
    assert got == rows, (got, rows)
print(f"  paged: first page of {page} rows                 p50 {pct(firsts, 50):7.1f} ms  p95 {pct(firsts, 95):7.1f} ms")
print(f"  paged: next page of {page} rows ({len(nexts)} pages)     p50 {pct(nexts, 50):7.1f} ms  p95 {pct(nexts, 95):7.1f} ms")
print(f"  warehouse port calls walking {rows // page - 1} next pages: {walk_calls[-1] or 'none'}")
PY
