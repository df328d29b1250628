#!/usr/bin/env bash
# Makes sure the servers the tests talk to are up: PostgreSQL on 127.0.0.1:5432 (trust auth for
# local TCP, as on the development machines) and Redis on 127.0.0.1:6379 (nothing on disk).
# Starts them when they are installed but stopped; installs them with apt-get when missing
# (needs root, as in CI). Idempotent; called by scripts/test.sh and .ci/run.
set -euo pipefail

echo "postgresql:"
if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
  fresh_pg=1
fi
pg_version="$(ls /etc/postgresql | sort -V | tail -n1)"
if [[ "${fresh_pg:-0}" == 1 ]]; then
  # Tests connect over TCP as postgres without a password, as on the development machines.
  hba="/etc/postgresql/${pg_version}/main/pg_hba.conf"
  sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
fi
if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  pg_ctlcluster --skip-systemctl-redirect "$pg_version" main start
fi
for _ in $(seq 1 50); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.2; done
psql -h 127.0.0.1 -U postgres -d postgres -Atc 'SELECT version()'

echo "redis:"
if ! command -v redis-server >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
fi
for _ in $(seq 1 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.2; done
redis-cli -h 127.0.0.1 -p 6379 ping

