#!/usr/bin/env bash
# Regenerate the planner's reference measurements (crates/cli/tests/plan/bench-base-{1,2}t.json)
# and its golden report from the current engine: `harken bench --json` of the int8 Whisper base
# model on a 20-s clip (the first ../shared/eval/real recordings, resampled to 16 kHz mono and
# concatenated with sox — the clip bench/lambda_cold.py uses), on 1 and 2 threads.
#
#   bench/plan-reference.sh [MODEL]      (default: base-int8)
#
# Then run `HARKEN_BLESS=1 cargo test -p harken-cli --test plan` and review the diff of
# crates/cli/tests/plan/reference.txt.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${HARKEN_SHARED:-$root/../shared}
model=${1:-base-int8}
bin=${HARKEN_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/harken}
[[ -x "$bin" ]] || { echo "plan-reference: build harken first (cargo build --release)" >&2; exit 2; }
command -v sox >/dev/null || { apt-get update -qq && apt-get install -y -qq sox libsox-fmt-all; } >/dev/null
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
total=0 parts=()
for f in "$shared"/eval/real/audio/*.wav; do
  out="$tmp/part${#parts[@]}.wav"
  sox "$f" -r 16000 -c 1 -b 16 "$out"
  parts+=("$out")
  total=$(python3 -c "print($total + $(soxi -D "$out"))")
  python3 -c "import sys; sys.exit(0 if $total >= 20.5 else 1)" && break
done
sox "${parts[@]}" "$tmp/clip20.wav" trim 0 20
for t in 1 2; do
  "$bin" bench --model "$model" --threads "$t" --runs 3 --json "$tmp/clip20.wav" \
    > "$root/crates/cli/tests/plan/bench-base-${t}t.json"
done
echo "wrote crates/cli/tests/plan/bench-base-{1,2}t.json from $model" >&2
