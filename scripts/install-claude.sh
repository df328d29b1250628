#!/usr/bin/env bash
# Installs the pinned Claude Code CLI (npm @anthropic-ai/claude-code) into a private tools
# directory and prints the path of its `claude` binary. Idempotent: a second run only prints.
#
# The version lives in scripts/claude-version, which bqai-llm's tests read too, so the tests
# and this script always agree on where the binary is.
#
#   BQAI_TOOLS_DIR  where tool installs go (default: $HOME/.cache/bqai/tools)
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="$(tr -d '[:space:]' < "${script_dir}/claude-version")"
if [[ ! "${version}" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
  echo "install-claude.sh: unexpected version '${version}' in scripts/claude-version" >&2
  exit 1
fi

prefix="${BQAI_TOOLS_DIR:-${HOME}/.cache/bqai/tools}/claude-code-${version}"
bin="${prefix}/node_modules/.bin/claude"

if [[ ! -x "${bin}" ]] || ! "${bin}" --version >/dev/null 2>&1; then
  mkdir -p "${prefix}"
  # stdout belongs to the path we print; npm's chatter goes to stderr.
  npm install --prefix "${prefix}" --no-audit --no-fund \
    "@anthropic-ai/claude-code@${version}" >&2
  if ! "${bin}" --version >/dev/null 2>&1; then
    echo "install-claude.sh: ${bin} does not run after installing ${version}" >&2
    exit 1
  fi
fi

echo "${bin}"
