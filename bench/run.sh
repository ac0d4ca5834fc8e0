#!/usr/bin/env bash
# Compare Harken with faster-whisper (speed, cold start, peak RSS, WER) - see bench/compare.py.
#
#   bench/run.sh [compare.py options...]
#   bench/run.sh --engines fw --limit 3 --model ~/.cache/harken/models/whisper-tiny.en
#
# Sets up the faster-whisper venv (bench/setup-peer.sh), builds nothing, and runs compare.py with
# the venv's python. The harken binary is $HARKEN_BIN, else
# ${CARGO_TARGET_DIR:-$HOME/.cache/harken/target}/release/harken (build it first:
# cargo build --release). Reads ../shared (evaluation audio, wer_reference.py) beside the repo.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
"$here/setup-peer.sh"
py="${HARKEN_BENCH_VENV:-$HOME/.cache/harken/bench-venv}/bin/python"
bin=${HARKEN_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/harken/target}/release/harken}
exec "$py" "$here/compare.py" --harken-bin "$bin" "$@"
