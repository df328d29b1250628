"""Times sequential MCP tool calls to `bqai mcp` over stdio with a bare JSON-RPC driver (no SDK,
so the numbers are bqai's): the start-up to an answered `initialize`, then N calls of a
catalog read and of a cached `run_query`. Used by scripts/bench-mcp.sh.

    python3 tests/mcp/stdio_latency.py BQAI_BIN DATA_DIR API_KEY [N]
"""

import json
import os
import statistics
import subprocess
import sys
import time

bin_, data, key = sys.argv[1:4]
n = int(sys.argv[4]) if len(sys.argv) > 4 else 500
env = dict(os.environ, BQAI_API_KEY=key)
started = time.perf_counter()
proc = subprocess.Popen(
    [bin_, "--data-dir", data, "mcp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
)
next_id = 0


def rpc(method, params=None, notify=False):
    global next_id
    msg = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        msg["params"] = params
    if not notify:
        next_id += 1
        msg["id"] = next_id
    proc.stdin.write((json.dumps(msg) + "\n").encode())
    proc.stdin.flush()
    if notify:
        return None
    while True:
        reply = json.loads(proc.stdout.readline())
        if reply.get("id") == next_id:
            return reply


rpc("initialize", {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}})
rpc("notifications/initialized", notify=True)
print(f"start-up to an answered initialize: {(time.perf_counter() - started) * 1000:.0f} ms")


def timed(tool, args):
    rpc("tools/call", {"name": tool, "arguments": args})  # warm
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        reply = rpc("tools/call", {"name": tool, "arguments": args})
        samples.append((time.perf_counter() - t) * 1000)
        assert not reply["result"].get("isError"), reply
    samples.sort()
    p = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]
    print(f"{tool}: {n} calls, p50 {p(0.5):.2f} ms, p95 {p(0.95):.2f} ms, p99 {p(0.99):.2f} ms, mean {statistics.mean(samples):.2f} ms")


timed("describe_table", {"dataset_id": "shop", "table_id": "orders"})
timed("run_query", {"sql": "SELECT country, COUNT(*) AS n FROM shop.customers GROUP BY country"})
proc.stdin.close()
proc.wait(timeout=30)
