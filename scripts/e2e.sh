#!/usr/bin/env bash
# The chat page in a real browser: installs Debian's chromium (only if missing) and the pinned
# playwright-core, builds bqai, starts `bqai serve` on a free loopback port with a fresh data
# directory, and runs the Node tests in tests/e2e against it. Exits non-zero when a test fails.
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

port="$(node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")"
data_dir="$(mktemp -d)"
log="${data_dir}/serve.log"
BQAI__LOG__LEVEL=warn "${bin}" --data-dir "${data_dir}" serve --host 127.0.0.1 --port "${port}" >"${log}" 2>&1 &
server=$!
cleanup() {
  kill "${server}" 2>/dev/null || true
  wait "${server}" 2>/dev/null || true
  rm -rf "${data_dir}"
}
trap cleanup EXIT

export BQAI_URL="http://127.0.0.1:${port}"
for _ in $(seq 1 120); do
  if curl -sf "${BQAI_URL}/health" >/dev/null 2>&1; then break; fi
  if ! kill -0 "${server}" 2>/dev/null; then
    echo "e2e: bqai serve exited:" >&2; cat "${log}" >&2; exit 1
  fi
  sleep 0.5
done
curl -sf "${BQAI_URL}/health" >/dev/null || { echo "e2e: bqai did not come up" >&2; cat "${log}" >&2; exit 1; }

status=0
node --test --test-concurrency=1 tests/e2e/ || status=$?
if [[ ${status} -ne 0 ]]; then
  echo "e2e: failed; the server's log:" >&2
  tail -n 50 "${log}" >&2
fi
exit "${status}"
