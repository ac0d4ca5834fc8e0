#!/usr/bin/env bash
# Real-time factor of the CTC + LM path against Whisper base decoding on the same audio, side by
# side in one run (harken bench: 3 runs per file, min and median), on three clips of
# ../shared/eval (short dev, a longer real one, the dialogue in other/).
#
#   bench/ctc/rtf.sh CTC_PACKAGE
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
shared=${HARKEN_SHARED:-$root/../shared}
[[ -d "$shared/eval" ]] || { echo "needs ../shared/eval" >&2; exit 2; }
pkg=${1:?CTC package directory}
H=${HARKEN_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/harken/target}/release/harken}
clips=("$shared/eval/dev/audio/dev-000-espeak-ng-en-us.wav"
       "$shared/eval/real/audio/pocketsphinx_librivox_0870.wav"
       "$shared/eval/other/audio/"*)
for c in "${clips[@]}"; do
  for m in base "$pkg"; do
    "$H" bench --model "$m" --language en --runs 3 --json "$c" 2>/dev/null
  done
done | python3 -c '
import json, sys, os
text, rows, dec = sys.stdin.read(), [], json.JSONDecoder()
i = text.find("{")
while i >= 0:
    obj, end = dec.raw_decode(text, i)
    rows.append(obj)
    i = text.find("{", end)
print("| clip | audio s | Whisper base s (min / median) | CTC + LM s (min / median) | CTC decoder s | speed-up (median) |")
print("|---|---|---|---|---|---|")
for w, c in zip(rows[0::2], rows[1::2]):
    a, b = w["files"][0], c["files"][0]
    print("| %s | %.1f | %.2f / %.2f | %.2f / %.2f | %.3f | %.1fx |" % (os.path.basename(a["file"]), a["audio_seconds"],
          a["min_seconds"], a["median_seconds"], b["min_seconds"], b["median_seconds"], b["stages"]["decoder"],
          a["median_seconds"] / b["median_seconds"]))
'
