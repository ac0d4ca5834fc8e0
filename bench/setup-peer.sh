#!/usr/bin/env bash
# Create (idempotently) the Python venv that holds Harken's comparison peer, faster-whisper.
#
#   bench/setup-peer.sh
#
# The venv lives at ${HARKEN_BENCH_VENV:-$HOME/.cache/harken/bench-venv}; its python is
# "$venv/bin/python". It pip-installs the pinned faster-whisper (and numpy) from the ordinary
# Python package index. When the venv already has the pinned version it prints nothing and exits 0.
# Used by bench/run.sh, bench/german.sh (for faster-whisper in bench/german_wer.py) and
# scripts/gen_mel_fixture.py. Set PYTHON to choose the interpreter the venv is made from.
set -euo pipefail

FW_VERSION=1.2.1
venv=${HARKEN_BENCH_VENV:-$HOME/.cache/harken/bench-venv}
py="$venv/bin/python"
host_py=${PYTHON:-python3}

installed() {
  [[ -x "$py" ]] && "$py" - "$FW_VERSION" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if version("faster-whisper") == sys.argv[1] and version("numpy") else 1)
PY
}

installed && exit 0

echo "setup-peer: installing faster-whisper==$FW_VERSION into $venv ..." >&2
if [[ ! -x "$py" ]]; then
  mkdir -p "$(dirname "$venv")"
  "$host_py" -m venv "$venv"
fi
"$py" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
"$py" -m pip install --quiet --disable-pip-version-check "faster-whisper==$FW_VERSION" numpy >&2
installed || { echo "setup-peer: faster-whisper==$FW_VERSION did not install into $venv" >&2; exit 1; }
echo "setup-peer: ready ($venv)" >&2
