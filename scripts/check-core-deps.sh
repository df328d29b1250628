#!/usr/bin/env bash
# Fails when bqai-core's normal (non-dev) dependency tree contains an IO crate.
# The invariant is documented in docs/ARCHITECTURE.md.
set -euo pipefail
forbidden=(
  actix-web actix-http actix-rt actix-server awc
  diesel diesel-async diesel_migrations libsqlite3-sys tokio-postgres
  redis deadpool-redis
  reqwest hyper
  datafusion arrow parquet
  google-cloud-bigquery google-cloud-bigquery-v2 google-cloud-auth google-cloud-gax
  tokio
)
tree=$(cargo tree -p bqai-core -e normal --prefix none --format '{p}' | awk '{print $1}' | sort -u)
bad=0
for crate in "${forbidden[@]}"; do
  if grep -qx "$crate" <<<"$tree"; then
    echo "bqai-core must not depend on $crate; path:" >&2
    cargo tree -p bqai-core -e normal -i "$crate" >&2 || true
    bad=1
  fi
done
[ "$bad" -eq 0 ] && echo "ok: bqai-core pulls in none of: ${forbidden[*]}"
exit "$bad"
