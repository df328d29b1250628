#!/usr/bin/env bash
# The README's test command: makes sure PostgreSQL and Redis are up (scripts/services.sh),
# installs what cargo cannot fetch (the pinned Claude Code CLI, from npm), then runs every test
# of the workspace. Extra arguments go to
# `cargo test` (e.g. `scripts/test.sh -p bqai-core`).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh
export BQAI_BQ_EMULATOR="${BQAI_BQ_EMULATOR:-$(scripts/bqemulator.sh)}"

if [[ -z "${BQAI_CLAUDE_BIN:-}" ]]; then
  BQAI_CLAUDE_BIN="$(scripts/install-claude.sh)"
  export BQAI_CLAUDE_BIN
fi
echo "claude: ${BQAI_CLAUDE_BIN} ($("${BQAI_CLAUDE_BIN}" --version))"

if [[ $# -eq 0 ]]; then
  set -- --workspace
fi
exec cargo test --locked "$@"
