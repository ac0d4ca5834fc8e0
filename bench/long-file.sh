#!/usr/bin/env bash
# One hour of speech through `harken transcribe`: peak RSS, wall time and real-time factor.
#
#   bench/long-file.sh [harken transcribe options...]
#
# Builds ${HARKEN_CACHE_DIR:-~/.cache/harken}/bench/one-hour.wav (16 kHz mono) by concatenating
# ../shared/eval/{dev,real} audio until it lasts an hour (sox, from Debian), then transcribes it
# with the release binary ($HARKEN_BIN or ${CARGO_TARGET_DIR:-~/.cache/harken/target}/release/harken)
# under /usr/bin/time. Prints one JSON line with the measurements.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
shared=${HARKEN_SHARED:-$here/../../shared}
cache=${HARKEN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/harken}
bin=${HARKEN_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/harken/target}/release/harken}
[[ -d "$shared/eval" ]] || { echo "long-file: $shared/eval is missing (../shared beside the repo)" >&2; exit 2; }
[[ -x "$bin" ]] || { echo "long-file: no harken binary at $bin (cargo build --release)" >&2; exit 2; }
command -v sox >/dev/null || { apt-get update -qq && apt-get install -y -qq sox libsox-fmt-all; } >/dev/null
mkdir -p "$cache/bench"
out="$cache/bench/one-hour.wav"
if [[ ! -f "$out" ]]; then
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  i=0
  for f in "$shared"/eval/dev/audio/*.wav "$shared"/eval/real/audio/*.wav; do
    sox -q "$f" -r 16000 -c 1 -b 16 "$tmp/$(printf %05d $i).wav" 2>/dev/null && i=$((i+1))
  done
  sox -q "$tmp"/*.wav "$tmp/once.wav"
  once=$(soxi -D "$tmp/once.wav")
  reps=$(python3 -c "import math; print(math.ceil(3600 / $once))")
  args=(); for _ in $(seq "$reps"); do args+=("$tmp/once.wav"); done
  sox -q "${args[@]}" "$tmp/long.wav" trim 0 3600
  mv "$tmp/long.wav" "$out"
fi
secs=$(soxi -D "$out")
rss_file=$(mktemp)
start=$(date +%s.%N)
/usr/bin/time -f %M -o "$rss_file" "$bin" transcribe --format json "$@" "$out" > "$cache/bench/one-hour.json"
end=$(date +%s.%N)
python3 - "$cache/bench/one-hour.json" "$rss_file" "$secs" "$start" "$end" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
rss_kib = int(open(sys.argv[2]).read().split()[-1])
secs, start, end = float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
wall = end - start
print(json.dumps({"audio_seconds": secs, "wall_seconds": round(wall, 1), "rtf": round(wall / secs, 4),
                  "peak_rss_mib": round(rss_kib / 1024, 1), "segments": len(doc["segments"]),
                  "last_segment_end": doc["segments"][-1]["end"] if doc["segments"] else None,
                  "words": len(doc["text"].split())}))
PY
