#!/usr/bin/env bash
# Makes sure an S3-compatible server (moto's server mode, PyPI `moto[server]`, pinned below)
# answers on 127.0.0.1 and prints its endpoint. Idempotent: installs it once into a private
# virtual environment and starts it only when nothing answers yet. Called by scripts/test.sh;
# the tests of export jobs with an `s3://` destination find it through BQAI_S3_EMULATOR
# (they skip nothing: without it they fail, saying to run this script).
#
#   BQAI_TOOLS_DIR      where tool installs go (default: $HOME/.cache/bqai/tools)
#   BQAI_S3_PORT        port (default 9070)
set -euo pipefail

moto_version="5.2.6"
port="${BQAI_S3_PORT:-9070}"
endpoint="http://127.0.0.1:${port}"
prefix="${BQAI_TOOLS_DIR:-${HOME}/.cache/bqai/tools}/moto"
venv="${prefix}/venv-${moto_version}"
marker="${venv}/.bqai-installed-${moto_version}"

# moto answers its own dashboard on /moto-api/.
healthy() { curl -sf -o /dev/null --max-time 2 "${endpoint}/moto-api/"; }

if healthy; then
  echo "${endpoint}"
  exit 0
fi

if [[ ! -f "${marker}" ]] || [[ ! -x "${venv}/bin/moto_server" ]]; then
  echo "s3emulator.sh: installing moto ${moto_version} into ${venv}" >&2
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >&2
  fi
  mkdir -p "${prefix}"
  rm -rf "${venv}"
  python3 -m venv "${venv}" >&2
  timeout 600 "${venv}/bin/pip" install --quiet --disable-pip-version-check \
    --timeout 60 --retries 3 "moto[server]==${moto_version}" >&2
  touch "${marker}"
fi

log="${prefix}/moto-${port}.log"
echo "s3emulator.sh: starting moto on ${endpoint} (log: ${log})" >&2
(
  setsid nohup "${venv}/bin/moto_server" -H 127.0.0.1 -p "${port}" >"${log}" 2>&1 </dev/null &
  echo $! >"${prefix}/moto-${port}.pid"
)
for _ in $(seq 1 150); do
  if healthy; then
    echo "${endpoint}"
    exit 0
  fi
  sleep 0.2
done
echo "s3emulator.sh: moto did not answer ${endpoint} within 30 s; last log lines:" >&2
tail -n 20 "${log}" >&2 || true
exit 1
