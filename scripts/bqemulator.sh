#!/usr/bin/env bash
# Makes sure the BigQuery emulator (PyPI bqemulator, pinned below) answers on 127.0.0.1 and
# prints its REST endpoint. Idempotent: installs it once into a private virtual environment,
# installs the two DuckDB extensions it needs (it cannot download them itself), and starts it
# only when nothing answers `GET /healthz` yet. Called by scripts/test.sh; the BigQuery tests
# find the emulator through BQAI_BQ_EMULATOR (default http://127.0.0.1:9050).
#
#   BQAI_TOOLS_DIR      where tool installs go (default: $HOME/.cache/bqai/tools)
#   BQAI_BQ_REST_PORT   REST port (default 9050)
#   BQAI_BQ_GRPC_PORT   gRPC port (default 9060)
#   BQAI_BQ_PROJECT     the emulator's project (default test-project)
set -euo pipefail

bqemu_version="1.4.0"
duckdb_version="1.5.5"
rest_port="${BQAI_BQ_REST_PORT:-9050}"
grpc_port="${BQAI_BQ_GRPC_PORT:-9060}"
project="${BQAI_BQ_PROJECT:-test-project}"
endpoint="http://127.0.0.1:${rest_port}"

prefix="${BQAI_TOOLS_DIR:-${HOME}/.cache/bqai/tools}/bqemu"
venv="${prefix}/venv-${bqemu_version}"
# The emulator runs with this HOME, so DuckDB finds the extensions installed below.
emu_home="${prefix}/home"
marker="${venv}/.bqai-installed-${bqemu_version}-duckdb-${duckdb_version}"

if ! command -v curl >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" -eq 0 ]]; then
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >&2
  else
    echo "bqemulator.sh: curl is required" >&2
    exit 1
  fi
fi

healthy() { curl -sf -o /dev/null --max-time 2 "${endpoint}/healthz"; }

if healthy; then
  echo "${endpoint}"
  exit 0
fi

# python3 with the venv module (Debian ships it separately, as python3-venv).
ensure_python_venv() {
  if command -v python3 >/dev/null 2>&1 && python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    return
  fi
  if command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" -eq 0 ]]; then
    echo "bqemulator.sh: installing python3 and python3-venv with apt-get" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >&2
  else
    echo "bqemulator.sh: python3 with the venv module is required" \
      "(Debian/Ubuntu: apt-get install python3-venv)" >&2
    exit 1
  fi
}

if [[ ! -f "${marker}" ]] || [[ ! -x "${venv}/bin/bqemulator" ]]; then
  echo "bqemulator.sh: installing bqemulator ${bqemu_version} into ${venv} (about 70 s)" >&2
  ensure_python_venv
  mkdir -p "${prefix}" "${emu_home}"
  # A half-finished earlier install (no marker) is started over.
  rm -rf "${venv}"
  python3 -m venv "${venv}" >&2
  # Bounded: 60 s per network read, 3 retries, 10 minutes for the whole install.
  timeout 600 "${venv}/bin/pip" install --quiet --disable-pip-version-check \
    --timeout 60 --retries 3 \
    "bqemulator==${bqemu_version}" "duckdb==${duckdb_version}" \
    "duckdb-extension-spatial==${duckdb_version}" "duckdb-extension-avro==${duckdb_version}" \
    "duckdb-extensions==${duckdb_version}" numpy >&2
  HOME="${emu_home}" "${venv}/bin/python" -c "
import duckdb
from duckdb_extensions import import_extension
con = duckdb.connect()
import_extension('spatial', con=con)
import_extension('avro', con=con)
" >&2
  touch "${marker}"
fi

log="${prefix}/bqemulator-${rest_port}.log"
echo "bqemulator.sh: starting the emulator on ${endpoint} (log: ${log})" >&2
# setsid + nohup: the emulator outlives this script and the shell that ran it.
(
  cd "${emu_home}"
  HOME="${emu_home}" setsid nohup "${venv}/bin/bqemulator" start \
    --rest-host 127.0.0.1 --rest-port "${rest_port}" \
    --grpc-host 127.0.0.1 --grpc-port "${grpc_port}" \
    --project "${project}" >"${log}" 2>&1 </dev/null &
  echo $! >"${prefix}/bqemulator-${rest_port}.pid"
)

for _ in $(seq 1 150); do
  if healthy; then
    echo "${endpoint}"
    exit 0
  fi
  sleep 0.2
done
echo "bqemulator.sh: the emulator did not answer ${endpoint}/healthz within 30 s; last log lines:" >&2
tail -n 20 "${log}" >&2 || true
exit 1
