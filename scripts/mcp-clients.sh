#!/usr/bin/env bash
# bqai's MCP server driven by the official Python SDK (PyPI `mcp`, pinned), over stdio
# (`bqai mcp`, spawned by the SDK) and over streamable HTTP (`/mcp` on a running `bqai serve`),
# with API keys on: tests/mcp/clients.py. Called by scripts/test.sh after the cargo tests.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/bqai/target}"
venv="${BQAI_MCP_VENV:-/root/.cache/bqai/venv-mcp}"
if [[ ! -x "${venv}/bin/python" ]] || ! "${venv}/bin/python" -c 'import mcp' 2>/dev/null; then
  python3 -m venv "${venv}"
  "${venv}/bin/pip" install -q mcp==2.3.0
fi

cargo build --locked -q -p bqai --bin bqai
bin="${CARGO_TARGET_DIR}/debug/bqai"

work="$(mktemp -d)"
pid=""
cleanup() {
  [[ -n "${pid}" ]] && kill "${pid}" 2>/dev/null || true
  rm -rf "${work}"
}
trap cleanup EXIT

# The server and every `bqai mcp` the SDK spawns read the same settings (the environment) and
# the same store (the data directory).
export BQAI__AUTH__MODE=api_key
export BQAI__LOG__LEVEL=warn
# 10 MB: below what `SELECT * FROM shop.order_items` processes (14.4 MB on the embedded
# engine), above every other query of the test.
export BQAI__QUERY__MAX_BYTES_BILLED=10000000
newkey() {
  "${bin}" --data-dir "${work}" keys create --name "$1" --role "$2" "${@:3}" |
    tr -s ' \t' '\n\n' | grep -m1 '^bqai_'
}
ADMIN_KEY="$(newkey mcp-admin admin)"
ANALYST_KEY="$(newkey mcp-agent analyst)"
NARROW_KEY="$(newkey mcp-narrow analyst --datasets elsewhere)"
LIMITED_KEY_STDIO="$(newkey mcp-limited-stdio analyst --rate-limit 12)"
LIMITED_KEY_HTTP="$(newkey mcp-limited-http analyst --rate-limit 12)"
export ADMIN_KEY ANALYST_KEY NARROW_KEY LIMITED_KEY_STDIO LIMITED_KEY_HTTP

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
# Links of exports made over stdio point at this server.
export BQAI__MCP__PUBLIC_URL="http://127.0.0.1:${port}"
"${bin}" --data-dir "${work}" serve --port "${port}" >"${work}/server.log" 2>&1 &
pid=$!
base="http://127.0.0.1:${port}"
for _ in $(seq 1 300); do
  curl -fsS "${base}/health" >/dev/null 2>&1 && break
  kill -0 "${pid}" 2>/dev/null || { cat "${work}/server.log"; exit 1; }
  sleep 0.2
done

status=0
BQAI_BIN="${bin}" BQAI_DATA_DIR="${work}" BQAI_BASE="${base}" \
  "${venv}/bin/python" tests/mcp/clients.py "$@" || status=$?
if [[ ${status} -ne 0 ]] || grep -q 'panicked' "${work}/server.log"; then
  echo "server log:" >&2
  cat "${work}/server.log" >&2
  exit 1
fi
