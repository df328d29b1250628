#!/usr/bin/env bash
# The chat and activity pages in a real browser: installs Debian's chromium and the sqlite3 CLI
# (only if missing) and the pinned playwright-core, builds bqai, starts four `bqai serve`s on
# free loopback ports with fresh data directories — one open (auth off), one with API keys on
# and an analyst key made offline with `bqai keys create`, one open with `--data <dir>/exports`
# (a small CSV, so two datasets: `shop` and `exports`), and one open whose history is seeded
# with known entries (for the activity page) — and runs the Node tests in tests/e2e against
# them. Exits non-zero when a test fails.
#
#   BQAI_CHROMIUM   the browser (default /usr/bin/chromium)
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/bqai/target}"
chromium="${BQAI_CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "${chromium}" ]]; then
  echo "e2e: installing Debian's chromium" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq chromium >&2
fi
"${chromium}" --version >&2

if ! command -v sqlite3 >/dev/null 2>&1; then
  echo "e2e: installing the sqlite3 CLI" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq sqlite3 >&2
fi

if ! command -v node >/dev/null 2>&1; then
  apt-get update -qq >&2 && apt-get install -y -qq nodejs npm >&2
fi
PLAYWRIGHT_CORE_DIR="$(scripts/install-playwright.sh)"
export PLAYWRIGHT_CORE_DIR BQAI_CHROMIUM="${chromium}"

cargo build --locked -p bqai >&2
bin="${CARGO_TARGET_DIR}/debug/bqai"

free_port() {
  node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}
work="$(mktemp -d)"
servers=()
cleanup() {
  for pid in "${servers[@]}"; do kill "${pid}" 2>/dev/null || true; done
  for pid in "${servers[@]}"; do wait "${pid}" 2>/dev/null || true; done
  rm -rf "${work}"
}
trap cleanup EXIT

# start NAME [ENV=VALUE…] [-- SERVE-ARG…]: `bqai serve` with data directory ${work}/NAME;
# sets ${url}.
start() {
  local name="$1"; shift
  local port dir="${work}/${name}" envs=()
  while [[ $# -gt 0 && "$1" != "--" ]]; do envs+=("$1"); shift; done
  [[ $# -gt 0 ]] && shift
  port="$(free_port)"
  mkdir -p "${dir}"
  env BQAI__LOG__LEVEL=warn "${envs[@]}" "${bin}" --data-dir "${dir}" serve --host 127.0.0.1 --port "${port}" "$@" \
    >"${work}/${name}.log" 2>&1 &
  servers+=($!)
  url="http://127.0.0.1:${port}"
  for _ in $(seq 1 120); do
    if curl -sf "${url}/health" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "${servers[-1]}" 2>/dev/null; then break; fi
    sleep 0.5
  done
  echo "e2e: bqai serve (${name}) did not come up:" >&2; cat "${work}/${name}.log" >&2
  return 1
}

start open
BQAI_URL="${url}"
# Keys on: the analyst key is made offline against the server's own store, as an operator would.
mkdir -p "${work}/keys"
BQAI_AUTH_KEY="$(BQAI__AUTH__MODE=api_key "${bin}" --data-dir "${work}/keys" keys create --name e2e --role analyst \
  | tr ' ' '\n' | grep -m1 '^bqai_')"
start keys BQAI__AUTH__MODE=api_key
BQAI_AUTH_URL="${url}"
# Your own files next to the demo: one --data folder (so asks default to it) with a CSV whose
# amounts are partly empty (NULL).
mkdir -p "${work}/exports"
cat >"${work}/exports/companies.csv" <<'CSV'
company,amount
Acme,120
Globex,
Initech,80
Umbrella,200
Hooli,
Stark,50
CSV
# Its exports all run as background jobs (no result is "small"), so the page's job path (progress,
# then the signed link) is exercised too.
start data BQAI__EXPORT__INLINE_MAX_ROWS=0 BQAI__EXPORT__INLINE_MAX_BYTES=0 -- --data "${work}/exports"
BQAI_DATA_URL="${url}"
# A known history for the activity page (tests/e2e/activity.test.mjs), written into the
# server's own store (SQLite, created and migrated by the server at start) after it is up. Days
# are relative to today (UTC); the cost is bytes_billed / 2^40 * 6.25 USD (the default price):
#   day -1: an ask asked twice (1 TiB billed, then from the cache)            $6.25
#   day -2: one query shape run twice by bob (2 TiB, then 0), the slowest     $12.50
#           (the same SQL but for a literal: one shape)
#   day -4: the most expensive query (4 TiB), a failed and a rejected query   $25.00
#   day -10: 8 TiB, outside the default 7-day range                           $50.00
start seeded
BQAI_SEEDED_URL="${url}"
BQAI_SEEDED_D1="$(date -u -d '-1 days' +%F)"
BQAI_SEEDED_D2="$(date -u -d '-2 days' +%F)"
BQAI_SEEDED_D4="$(date -u -d '-4 days' +%F)"
BQAI_SEEDED_OLD="$(date -u -d '-10 days' +%F)"
tib=1099511627776
sqlite3 -bail "${work}/seeded/bqai.db" <<SQL
PRAGMA busy_timeout = 10000;
INSERT INTO query_history (id, kind, question, sql_submitted, sql_executed, status, error_code, error_message,
  principal, dataset, dry_run, bytes_processed, bytes_billed, duration_ms, row_count, cache_hit, created_at,
  ask_attempts, generator, llm_model, llm_latency_ms, llm_input_tokens, llm_output_tokens, llm_cost_usd,
  question_cache_hit, request_id, ask_follow_up, sql_shape, question_shape, rerun_of) VALUES
('00000000-0000-4000-8000-000000000001', 'ask', 'revenue by country in 2024',
  'SELECT country, SUM(amount) AS revenue FROM shop.orders WHERE EXTRACT(YEAR FROM order_date) = 2024 GROUP BY country',
  NULL, 'succeeded', NULL, NULL, 'alice', 'shop', 0, ${tib}, ${tib}, 1200, 5, 0, '${BQAI_SEEDED_D1} 10:00:00',
  1, 'builtin', NULL, 3, 0, 0, NULL, 0, 'e2e-seed-1', 0, 'a1a1a1a1a1a1a1a1', 'f1f1f1f1f1f1f1f1', NULL),
('00000000-0000-4000-8000-000000000002', 'ask', 'revenue by country in 2024',
  'SELECT country, SUM(amount) AS revenue FROM shop.orders WHERE EXTRACT(YEAR FROM order_date) = 2024 GROUP BY country',
  NULL, 'succeeded', NULL, NULL, 'alice', 'shop', 0, 0, 0, 40, 5, 1, '${BQAI_SEEDED_D1} 11:00:00',
  0, 'builtin', NULL, 0, 0, 0, NULL, 1, 'e2e-seed-2', 0, 'a1a1a1a1a1a1a1a1', 'f1f1f1f1f1f1f1f1', NULL),
('00000000-0000-4000-8000-000000000003', 'sql', NULL,
  'SELECT status, COUNT(*) AS orders FROM shop.orders WHERE amount > 0 GROUP BY status',
  NULL, 'succeeded', NULL, NULL, 'bob', 'shop', 0, $((2 * tib)), $((2 * tib)), 4500, 3, 0, '${BQAI_SEEDED_D2} 09:00:00',
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'e2e-seed-3', NULL, 'b2b2b2b2b2b2b2b2', NULL, NULL),
('00000000-0000-4000-8000-000000000004', 'sql', NULL,
  'SELECT status, COUNT(*) AS orders FROM shop.orders WHERE amount > 100 GROUP BY status',
  NULL, 'succeeded', NULL, NULL, 'bob', 'shop', 0, 0, 0, 900, 3, 1, '${BQAI_SEEDED_D2} 09:30:00',
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'e2e-seed-4', NULL, 'b2b2b2b2b2b2b2b2', NULL, NULL),
('00000000-0000-4000-8000-000000000005', 'sql', NULL,
  'SELECT customer_id, SUM(amount) AS spent FROM shop.orders GROUP BY customer_id ORDER BY spent DESC',
  NULL, 'succeeded', NULL, NULL, 'alice', 'shop', 0, $((4 * tib)), $((4 * tib)), 2500, 100, 0, '${BQAI_SEEDED_D4} 14:00:00',
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'e2e-seed-5', NULL, 'c3c3c3c3c3c3c3c3', NULL, NULL),
('00000000-0000-4000-8000-000000000006', 'sql', NULL,
  'SELECT missing_column FROM shop.orders',
  NULL, 'failed', 'INVALID_QUERY', 'Unrecognized name: missing_column at [1:8]', 'alice', 'shop', 0, 0, 0, 300, 0, 0,
  '${BQAI_SEEDED_D4} 15:00:00',
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'e2e-seed-6', NULL, 'd4d4d4d4d4d4d4d4', NULL, NULL),
('00000000-0000-4000-8000-000000000007', 'sql', NULL,
  'DELETE FROM shop.orders WHERE TRUE',
  NULL, 'rejected', 'SQL_REJECTED', 'only SELECT statements are allowed', 'bob', 'shop', 0, 0, 0, 2, 0, 0,
  '${BQAI_SEEDED_D4} 16:00:00',
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'e2e-seed-7', NULL, 'e5e5e5e5e5e5e5e5', NULL, NULL),
('00000000-0000-4000-8000-000000000008', 'sql', NULL,
  'SELECT * FROM shop.orders',
  NULL, 'succeeded', NULL, NULL, 'alice', 'shop', 0, $((8 * tib)), $((8 * tib)), 9000, 1000, 0, '${BQAI_SEEDED_OLD} 12:00:00',
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'e2e-seed-8', NULL, 'f6f6f6f6f6f6f6f6', NULL, NULL);
SQL
export BQAI_URL BQAI_AUTH_URL BQAI_AUTH_KEY BQAI_DATA_URL
export BQAI_SEEDED_URL BQAI_SEEDED_D1 BQAI_SEEDED_D2 BQAI_SEEDED_D4 BQAI_SEEDED_OLD

status=0
node --test --test-concurrency=1 tests/e2e/ || status=$?
if [[ ${status} -ne 0 ]]; then
  for name in open keys data seeded; do
    echo "e2e: failed; the ${name} server's log:" >&2
    tail -n 50 "${work}/${name}.log" >&2
  done
fi
exit "${status}"
