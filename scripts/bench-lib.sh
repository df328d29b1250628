# Shared by the benchmark scripts (sourced, not run): which bqai to run, and API keys for it.
# Expects CARGO_TARGET_DIR to be set.

# Sets `bin`: $BIN when given (compared runs use one binary), else a build with the cargo
# profile $1.
bench_binary() {
  if [[ -n "${BIN:-}" ]]; then
    bin=$BIN
  else
    cargo build --profile "$1" -p bqai
    bin="$CARGO_TARGET_DIR/$1/bqai"
  fi
}

# Prints a new API key named $2 with role $3, made with `bqai keys create` in data dir $1.
bench_key() {
  "$bin" keys create --data-dir "$1" --name "$2" --role "$3" --json 2>/dev/null |
    sed -n 's/.*"key": "\(bqai_[^"]*\)".*/\1/p'
}
