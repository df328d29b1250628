# bqai developer commands. `just` lists them.

export CARGO_TARGET_DIR := env_var_or_default("CARGO_TARGET_DIR", "/root/.cache/bqai/target")

default:
    @just --list

# Format all code.
fmt:
    cargo fmt --all

# Lints as CI runs them, plus the bqai-core dependency rule.
lint:
    cargo fmt --all -- --check
    scripts/check-core-deps.sh
    cargo clippy --workspace --all-targets -- -D warnings

# The README's test command.
test:
    scripts/test.sh

# The BigQuery adapter and API tests against the BigQuery emulator (installed and started
# on 127.0.0.1:9050 on first use; see docs/CONFIGURATION.md#bigquery).
test-bigquery:
    BQAI_BQ_EMULATOR="$(scripts/bqemulator.sh)" cargo test -p bqai-bigquery -p bqai --test api_bigquery

# Everything CI runs.
ci:
    bash .ci/run

# Run the service on the embedded defaults (DataFusion demo data, SQLite, in-process cache).
run *ARGS:
    cargo run --release -p bqai -- serve {{ARGS}}

# Criterion benchmarks (guard) and the HTTP load test; results go in docs/benchmarks.md.
bench:
    cargo bench -p bqai-core --bench guard
    scripts/bench-http.sh

# Services the embedded default does not need; later backends (Redis, PostgreSQL) do.
services-up:
    pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start || true
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true

# Apply database migrations.
migrate:
    cargo run -p bqai -- migrate
