"""bqai's MCP server through the official Python SDK (PyPI `mcp`), over both transports.

Run by scripts/mcp-clients.sh, which starts `bqai serve` with API keys on and passes:
  BQAI_BIN        the bqai binary (for `bqai mcp`, the stdio transport)
  BQAI_DATA_DIR   the server's data directory (shared with `bqai mcp`)
  BQAI_BASE       the server's base URL (`/mcp` is the streamable HTTP transport)
  ADMIN_KEY       an admin key (reads the audit log)
  ANALYST_KEY     an analyst key (the agent's)
  NARROW_KEY      an analyst key granted another dataset only (not `shop`)
  LIMITED_KEY_STDIO, LIMITED_KEY_HTTP
                  analyst keys with a rate limit of 12 requests per minute, one per transport

Every scenario runs over stdio and over streamable HTTP; the script exits non-zero on the first
failed expectation.
"""

import asyncio
import csv
import io
import json
import os
import sys
import urllib.request

import httpx2
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

BIN = os.environ["BQAI_BIN"]
DATA_DIR = os.environ["BQAI_DATA_DIR"]
BASE = os.environ["BQAI_BASE"]
ADMIN_KEY = os.environ["ADMIN_KEY"]
ANALYST_KEY = os.environ["ANALYST_KEY"]
NARROW_KEY = os.environ["NARROW_KEY"]
LIMITED_KEYS = {"stdio": os.environ["LIMITED_KEY_STDIO"], "http": os.environ["LIMITED_KEY_HTTP"]}

TOOLS = {
    "list_datasets",
    "list_tables",
    "describe_table",
    "preview_table",
    "run_query",
    "estimate_query",
    "ask",
    "get_history",
    "export",
}


def stdio(key):
    env = {k: v for k, v in os.environ.items() if k.startswith("BQAI__") or k in ("PATH", "HOME")}
    env["BQAI_API_KEY"] = key
    params = StdioServerParameters(command=BIN, args=["--data-dir", DATA_DIR, "mcp"], env=env)
    return stdio_client(params)


def http(key):
    client = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60)
    return streamable_http_client(f"{BASE}/mcp", http_client=client)


TRANSPORTS = {"stdio": stdio, "http": http}


def expect(cond, what, detail=""):
    if not cond:
        raise AssertionError(f"{what}: {detail}")


def error_code(result):
    expect(result.is_error, "a refusal is a tool error (isError)", result)
    code = result.structured_content["error"]["code"]
    text = result.content[0].text
    expect(text.startswith(code + ": "), "the text names the code", text)
    return code


async def call(session, tool, **args):
    return await session.call_tool(tool, args)


async def exercise(transport):
    async with TRANSPORTS[transport](ANALYST_KEY) as (read, write):
        async with ClientSession(read, write) as s:
            init = await s.initialize()
            expect(init.server_info.name == "bqai", "server name", init.server_info)
            expect(init.capabilities.tools is not None, "tools capability", init.capabilities)

            tools = await s.list_tools()
            names = {t.name for t in tools.tools}
            expect(names == TOOLS, "the tools", names)
            run_query = next(t for t in tools.tools if t.name == "run_query")
            props = run_query.input_schema["properties"]
            for field in ("sql", "dataset_id", "parameters", "dry_run", "max_rows"):
                expect(field in props, f"run_query takes {field}", props)

            r = await call(s, "list_datasets")
            expect(not r.is_error, "list_datasets", r)
            ids = [d["dataset_id"] for d in r.structured_content["data"]]
            expect("shop" in ids, "shop is listed", ids)

            r = await call(s, "list_tables", dataset_id="shop")
            tables = [t["table_id"] for t in r.structured_content["data"]]
            expect({"orders", "customers", "order_items"} <= set(tables), "shop's tables", tables)

            r = await call(s, "describe_table", dataset_id="shop", table_id="order_items")
            expect(not r.is_error, "describe_table", r)
            cols = [c["name"] for c in r.structured_content["table"]["schema"]]
            expect("quantity" in cols, "order_items columns", cols)
            measures = [m["name"] for m in r.structured_content["semantic"]["measures"]]
            expect("revenue" in measures, "the semantic model's measures", measures)
            expect("revenue = SUM(" in r.content[0].text, "measures in the text", r.content[0].text)

            r = await call(s, "preview_table", dataset_id="shop", table_id="customers", rows=3)
            expect(r.structured_content["row_count"] == 3, "preview rows", r.structured_content)

            sql = "SELECT country, COUNT(*) AS customers FROM shop.customers GROUP BY country ORDER BY customers DESC, country"
            r = await call(s, "run_query", sql=sql, max_rows=5)
            expect(not r.is_error, "run_query", r)
            sc = r.structured_content
            expect(sc["row_count"] == 5 and sc["rows"][0]["customers"] > 0, "rows", sc)
            expect(r.content[0].text.startswith("| country | customers |"), "a table in the text", r.content[0].text)
            query_id = sc["query_id"]

            r = await call(
                s,
                "run_query",
                sql="SELECT COUNT(*) AS n FROM shop.customers WHERE country = $country",
                parameters={"country": "Germany"},
            )
            expect(not r.is_error and r.structured_content["rows"][0]["n"] > 0, "parameters", r)

            r = await call(s, "estimate_query", sql="SELECT * FROM shop.orders")
            sc = r.structured_content
            expect(sc["dry_run"] is True and sc["stats"]["bytes_processed"] > 0, "estimate", sc)
            expect("Dry run, nothing ran" in r.content[0].text, "estimate text", r.content[0].text)

            r = await call(s, "ask", question="How many orders were placed?", dataset_id="shop")
            expect(not r.is_error, "ask", r)
            expect("COUNT" in r.structured_content["sql"].upper(), "ask's SQL", r.structured_content)
            expect(r.structured_content["result"]["row_count"] == 1, "ask's rows", r.structured_content)

            # The guard: a write is refused before anything runs.
            r = await call(s, "run_query", sql="DELETE FROM shop.orders WHERE TRUE")
            expect(error_code(r) == "SQL_REJECTED", "DELETE refused", r)
            r = await call(s, "run_query", sql="SELECT 1; DROP TABLE shop.orders")
            expect(error_code(r) == "SQL_REJECTED", "a second statement refused", r)

            # Bad arguments are tool errors the agent can read.
            r = await call(s, "run_query", sql="SELECT 1", maxrows=3)
            expect(error_code(r) == "INVALID_REQUEST" and "maxrows" in r.content[0].text, "unknown argument", r)

            # The byte cap (query.max_bytes_billed, set by the script): refused before billing.
            r = await call(s, "run_query", sql="SELECT * FROM shop.order_items")
            expect(error_code(r) == "COST_LIMIT_EXCEEDED", "over the byte cap", r)

            r = await call(s, "get_history", page_size=50)
            ids = [h["id"] for h in r.structured_content["data"]]
            expect(query_id in ids, "the query is in the history", ids)

            r = await call(s, "export", sql="SELECT customer_id, country FROM shop.customers ORDER BY customer_id", format="csv")
            expect(not r.is_error and r.structured_content["status"] == "succeeded", "export", r)
            url = r.structured_content["download_url"]
            expect(url.startswith(BASE + "/api/v1/exports/"), "the link points at the server", url)
            body = urllib.request.urlopen(url, timeout=30).read().decode()
            rows = list(csv.reader(io.StringIO(body)))
            expect(rows[0] == ["customer_id", "country"] and len(rows) > 10, "the exported file", rows[:3])

            res = await s.list_resources()
            uris = {x.uri for x in res.resources}
            expect("bqai://datasets/shop/tables/orders" in {str(u) for u in uris}, "table resources", uris)
            expect("bqai://datasets/shop/semantic-model" in {str(u) for u in uris}, "the model resource", uris)
            doc = await s.read_resource("bqai://datasets/shop/tables/orders")
            table = json.loads(doc.contents[0].text)
            expect(table["table_id"] == "orders", "a table resource", table)
            doc = await s.read_resource("bqai://datasets/shop/semantic-model")
            expect(json.loads(doc.contents[0].text)["dataset"] == "shop", "the model resource", doc)

            prompts = await s.list_prompts()
            expect([p.name for p in prompts.prompts] == ["explore_dataset"], "prompts", prompts)
            p = await s.get_prompt("explore_dataset", {"dataset_id": "shop"})
            text = p.messages[0].content.text
            expect("- orders" in text and "Verified example questions" in text, "the prompt", text)

    # A dataset outside the key's grants.
    async with TRANSPORTS[transport](NARROW_KEY) as (read, write):
        async with ClientSession(read, write) as s:
            await s.initialize()
            r = await call(s, "run_query", sql="SELECT COUNT(*) FROM shop.orders")
            expect(error_code(r) == "FORBIDDEN", "outside the grants", r)
            r = await call(s, "describe_table", dataset_id="shop", table_id="orders")
            expect(error_code(r) == "FORBIDDEN", "describe outside the grants", r)
            r = await call(s, "list_datasets")
            ids = [d["dataset_id"] for d in r.structured_content["data"]]
            expect("shop" not in ids, "shop is not listed to the narrow key", ids)

    # The key's rate limit counts MCP calls like REST calls (a query weighs 5).
    async with TRANSPORTS[transport](LIMITED_KEYS[transport]) as (read, write):
        async with ClientSession(read, write) as s:
            await s.initialize()
            codes = []
            for _ in range(4):
                r = await call(s, "run_query", sql="SELECT 1 AS one")
                codes.append(error_code(r) if r.is_error else "OK")
            expect(codes[:2] == ["OK", "OK"] and "RATE_LIMITED" in codes[2:], "rate limited", codes)
            sc = r.structured_content
            expect(sc["error"]["retry_after_secs"] >= 1, "retry after", sc)


def audit_events():
    req = urllib.request.Request(
        f"{BASE}/api/v1/admin/audit?page_size=500", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )
    return json.loads(urllib.request.urlopen(req, timeout=30).read())["data"]


def check_audit():
    events = audit_events()
    mcp = [e for e in events if e["route"].startswith("MCP ")]
    routes = {e["route"] for e in mcp}
    for route in ("MCP tools/call run_query", "MCP tools/call ask", "MCP tools/call export"):
        expect(route in routes, f"{route} is audited", routes)
    rejected = [e for e in mcp if e.get("error_code") == "SQL_REJECTED"]
    expect(rejected and all(e["outcome"] == "denied" for e in rejected), "refusals are denials", rejected[:2])
    forbidden = [e for e in mcp if e.get("error_code") == "FORBIDDEN"]
    expect(forbidden, "the forbidden calls are audited", routes)
    queries = [e for e in mcp if e["route"] == "MCP tools/call run_query" and e["outcome"] == "allowed"]
    expect(all(e["sql_fingerprint"] for e in queries), "queries carry their fingerprint", queries[:2])
    expect("shop.customers" in {t for e in queries for t in e["targets"]}, "queries name their tables", queries[:2])


async def main():
    for transport in sys.argv[1:] or list(TRANSPORTS):
        await exercise(transport)
        print(f"mcp over {transport}: ok")
    check_audit()
    print("mcp audit: ok")


asyncio.run(main())
