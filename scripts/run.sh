#!/usr/bin/env bash
# Set up Harken on this machine and transcribe audio with the default model (Whisper base).
#
#   scripts/run.sh [harken transcribe options...] [FILE...]
#
# Idempotent: installs the model into the user cache (scripts/install-models.sh), builds the
# release binary, then runs `harken transcribe`. With no FILE it transcribes the bundled sample
# testdata/audio/numbers_16k.wav. The binary ends up at
# ${CARGO_TARGET_DIR:-target}/release/harken; put it on PATH to use `harken` directly.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/install-models.sh base >&2
cargo build --release --locked -p harken-cli >&2
bin=${CARGO_TARGET_DIR:-$root/target}/release/harken
have_file=0
for a in "$@"; do [[ -f "$a" ]] && have_file=1; done
if [[ $have_file == 0 ]]; then set -- "$@" testdata/audio/numbers_16k.wav; fi
exec "$bin" transcribe "$@"
