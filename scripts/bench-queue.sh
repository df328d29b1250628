#!/usr/bin/env bash
# Fairness of the query queue under load: 200 heavy queries from 4 API keys at once against a
# running bqai on the embedded engine. Key `k1` sends 125 queries first; 0.5 s later `k2`, `k3`
# and `k4` send 25 each. Every query is distinct (no cache, no coalescing) and joins 1/400 of
# the order lines with all of them (~0.1 s of CPU). Prints, per key, when its first, median
# and last queries finished and how long they waited in the queue. With a fair queue the
# late keys finish long before k1's backlog does; results go in docs/benchmarks.md.
#
#   MAX_CONCURRENT=4 PER_KEY=2   the queue's bounds (query.max_concurrent, _per_key)
#   BIN=path/to/bqai             run this binary instead of building one
#   PROFILE=release              the cargo profile to build (default dist)
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-18090}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/bqai/target}"
. scripts/bench-lib.sh
bench_binary "${PROFILE:-dist}"
data=$(mktemp -d)
export BQAI__AUTH__MODE=api_key
keys=()
for k in k1 k2 k3 k4; do
  keys+=("$(bench_key "$data" "$k" analyst)")
done
BQAI__SERVER__REQUESTS_PER_MINUTE=0 BQAI__LOG__LEVEL=warn \
  BQAI__QUERY__MAX_CONCURRENT="${MAX_CONCURRENT:-4}" \
  BQAI__QUERY__MAX_CONCURRENT_PER_KEY="${PER_KEY:-2}" \
  BQAI__QUERY__QUEUE_TIMEOUT_MS=600000 BQAI__QUERY__DEFAULT_TIMEOUT_MS=300000 \
  "$bin" serve --port "$PORT" --data-dir "$data" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.2; done

python3 - "http://127.0.0.1:$PORT" "${keys[@]}" <<'PY'
import json, statistics, sys, threading, time, urllib.request, urllib.error
base, keys = sys.argv[1], sys.argv[2:]
plan = [("k1", keys[0], 125, 0.0)] + [(f"k{i+2}", k, 25, 0.5) for i, k in enumerate(keys[1:])]
done = {name: [] for name, *_ in plan}
errors = []
lock = threading.Lock()
start = time.monotonic()

def one(name, key, n):
    sql = ("SELECT SUM(a.quantity * b.quantity) AS s FROM shop.order_items a "
           f"CROSS JOIN shop.order_items b WHERE a.order_id % 400 = {n} AND b.order_id % 4 = 0")
    body = json.dumps({"sql": sql, "use_cache": False, "timeout_ms": 300000}).encode()
    req = urllib.request.Request(base + "/api/v1/query", data=body, headers={
        "Content-Type": "application/json", "Authorization": "Bearer " + key})
    try:
        with urllib.request.urlopen(req, timeout=900) as r:
            r.read()
        with lock:
            done[name].append(time.monotonic() - start)
    except urllib.error.HTTPError as e:
        with lock:
            errors.append((name, e.code, e.read()[:200]))

threads = []
n = 0
for name, key, count, delay in plan:
    while time.monotonic() - start < delay:
        time.sleep(0.01)
    for _ in range(count):
        t = threading.Thread(target=one, args=(name, key, n)); n += 1
        t.start(); threads.append(t)
for t in threads:
    t.join()
print(f"{len(threads)} queries in {time.monotonic() - start:.1f} s; errors: {len(errors)} {errors[:3]}")
print("| key | queries | sent at | first done | median done | last done |")
print("|---|---|---|---|---|---|")
for name, key, count, delay in plan:
    t = sorted(done[name])
    if t:
        print(f"| {name} | {len(t)} | {delay:.1f} s | {t[0]:.1f} s | {statistics.median(t):.1f} s | {t[-1]:.1f} s |")
metrics = urllib.request.urlopen(base + "/metrics").read().decode()
for line in metrics.splitlines():
    if line.startswith("bqai_query_queue_") and not line.startswith("#"):
        print(line)
PY
