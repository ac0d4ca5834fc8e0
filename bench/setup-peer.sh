#!/usr/bin/env bash
# Create (idempotently) the Python venv that holds Harken's comparison peer, faster-whisper.
#
#   bench/setup-peer.sh            # prints the venv's python path on stdout when done
#
# The venv lives at ${HARKEN_BENCH_VENV:-$HOME/.cache/harken/bench-venv}. It installs the pinned
# faster-whisper (and numpy) from the ordinary Python package index with pip. When the venv
# already has the pinned versions it does nothing and prints nothing but the python path.
# bench/run.sh, bench/german_wer.py and scripts/gen_mel_fixture.py use this venv.
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

if ! installed; then
  echo "setup-peer: installing faster-whisper==$FW_VERSION into $venv ..." >&2
  if [[ ! -x "$py" ]]; then
    mkdir -p "$(dirname "$venv")"
    "$host_py" -m venv "$venv"
  fi
  "$py" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
  "$py" -m pip install --quiet --disable-pip-version-check "faster-whisper==$FW_VERSION" numpy >&2
  installed || { echo "setup-peer: faster-whisper==$FW_VERSION did not install into $venv" >&2; exit 1; }
  echo "setup-peer: ready ($venv)" >&2
fi
echo "$py"
