#!/usr/bin/env bash
# The chat page in a real browser: installs Debian's chromium (only if missing) and the pinned
# playwright-core, builds bqai, starts three `bqai serve`s on free loopback ports with fresh data
# directories — one open (auth off), one with API keys on and an analyst key made offline with
# `bqai keys create`, and one open with `--data <dir>/exports` (a small CSV, so two datasets:
# `shop` and `exports`) — and runs the Node tests in tests/e2e against them. Exits non-zero when
# a test fails.
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
start data -- --data "${work}/exports"
BQAI_DATA_URL="${url}"
export BQAI_URL BQAI_AUTH_URL BQAI_AUTH_KEY BQAI_DATA_URL

status=0
node --test --test-concurrency=1 tests/e2e/ || status=$?
if [[ ${status} -ne 0 ]]; then
  for name in open keys data; do
    echo "e2e: failed; the ${name} server's log:" >&2
    tail -n 50 "${work}/${name}.log" >&2
  done
fi
exit "${status}"
