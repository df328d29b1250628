#!/usr/bin/env bash
# Installs the pinned npm package playwright-core (the browser driver only: no browser
# download) into a private tools directory and prints the package's directory. The browser is
# Debian's chromium (scripts/e2e.sh installs it). Idempotent: a second run only prints.
#
#   BQAI_TOOLS_DIR  where tool installs go (default: $HOME/.cache/bqai/tools)
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="$(tr -d '[:space:]' < "${script_dir}/playwright-version")"
if [[ ! "${version}" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
  echo "install-playwright.sh: unexpected version '${version}' in scripts/playwright-version" >&2
  exit 1
fi

prefix="${BQAI_TOOLS_DIR:-${HOME}/.cache/bqai/tools}/playwright-core-${version}"
pkg="${prefix}/node_modules/playwright-core"

if [[ ! -f "${pkg}/index.mjs" ]] || [[ "$(node -p "require('${pkg}/package.json').version" 2>/dev/null)" != "${version}" ]]; then
  mkdir -p "${prefix}"
  # stdout belongs to the path we print; npm's chatter goes to stderr. playwright-core has no
  # install script and downloads nothing.
  npm install --prefix "${prefix}" --no-audit --no-fund --ignore-scripts \
    "playwright-core@${version}" >&2
  if [[ ! -f "${pkg}/index.mjs" ]]; then
    echo "install-playwright.sh: ${pkg} is incomplete after installing ${version}" >&2
    exit 1
  fi
fi

echo "${pkg}"
