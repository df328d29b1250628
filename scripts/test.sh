#!/usr/bin/env bash
# The README's test command: makes sure PostgreSQL and Redis are up (scripts/services.sh),
# installs what cargo cannot fetch (the pinned Claude Code CLI, from npm), then runs every test
# of the workspace and, without arguments, the browser tests of the chat page (scripts/e2e.sh:
# Debian's chromium and playwright-core) and the schemathesis run against the OpenAPI spec
# (scripts/schemathesis.sh), and the MCP server through the official Python SDK
# (scripts/mcp-clients.sh). Extra arguments go to
# `cargo test` (e.g. `scripts/test.sh -p bqai-core`).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh
export BQAI_BQ_EMULATOR="${BQAI_BQ_EMULATOR:-$(scripts/bqemulator.sh)}"
# An S3-compatible server (moto) for export jobs with an s3:// destination.
export BQAI_S3_EMULATOR="${BQAI_S3_EMULATOR:-$(scripts/s3emulator.sh)}"

if [[ -z "${BQAI_CLAUDE_BIN:-}" ]]; then
  BQAI_CLAUDE_BIN="$(scripts/install-claude.sh)"
  export BQAI_CLAUDE_BIN
fi
echo "claude: ${BQAI_CLAUDE_BIN} ($("${BQAI_CLAUDE_BIN}" --version))"

e2e=0
if [[ $# -eq 0 ]]; then
  set -- --workspace
  e2e=1
fi
cargo test --locked "$@"

# The chat page in a real browser (Debian's chromium + playwright-core), and the API fuzzed
# against its own OpenAPI spec (schemathesis), on the whole run only.
if [[ ${e2e} -eq 1 ]]; then
  scripts/e2e.sh
  scripts/mcp-clients.sh
  scripts/schemathesis.sh
fi
