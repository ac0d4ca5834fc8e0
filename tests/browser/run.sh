#!/usr/bin/env bash
# The web page in a real browser: Debian's Chromium driven by playwright-core (npm, pinned in
# package-lock.json) against real `harken serve` processes with the tiny.en model.
#
#   tests/browser/run.sh [path/to/harken]
#
# Installs Chromium (apt) and playwright-core (npm ci) when missing; screenshots, the browser's
# own recording and the server logs go to $HARKEN_ARTIFACTS_DIR/browser (default
# target/artifacts/browser).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${1:-${CARGO_TARGET_DIR:-$root/target}/release/harken}
artifacts=${HARKEN_ARTIFACTS_DIR:-$root/target/artifacts}/browser
[[ -x "$bin" ]] || { echo "browser: no harken binary at $bin" >&2; exit 2; }
if ! command -v chromium >/dev/null; then
  echo "browser: installing chromium (apt, one-time, ~90 s)" >&2
  apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
if ! command -v npm >/dev/null; then
  # playwright-core 1.65 asks for Node 20 or later; Debian bookworm's nodejs is 18.
  echo "browser: installing nodejs and npm (apt, one-time)" >&2
  apt-get update -qq && apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
# npm ci every run (a second or two from npm's cache): node_modules is exactly the lock file.
(cd "$here" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error >&2)
rm -rf "$artifacts"
mkdir -p "$artifacts"
# Chromium's launcher script prints a harmless shell warning about /dev/shm; keep the rest.
node "$here/ui.mjs" "$bin" "$artifacts" 2> >(grep -v 'unexpected operator' >&2)
echo "browser: screenshots in $artifacts"
