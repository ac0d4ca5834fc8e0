#!/usr/bin/env bash
# Harken against the official DeepSpeech client (libdeepspeech 0.9.3) on the same model and
# audio, side by side in one run: time with 1 and 2 cores, model load time and peak RSS;
# then again with a scorer package.
#
#   bench/deepspeech.sh [MODEL.tflite] [RUNS]
#
# Audio: 60 s of ../shared/eval/real speech at 16 kHz (sox, from Debian). Model: the armspeech
# Coqui STT model from scripts/install-deepspeech.sh unless given. One core = `taskset -c 0`
# for both (the client always starts 4 TFLite threads; Harken is told RAYON_NUM_THREADS=1);
# two cores = the whole machine, Harken with 2 threads. Prints a table and one JSON line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root="$here/.."
shared=${HARKEN_SHARED:-$root/../shared}
cache=${HARKEN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/harken}
bin=${HARKEN_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/harken}
[[ -x "$bin" ]] || { echo "deepspeech bench: no harken binary at $bin (cargo build --release)" >&2; exit 2; }
[[ -d "$shared/eval/real" ]] || { echo "deepspeech bench: $shared/eval is missing" >&2; exit 2; }
ds=$("$root/scripts/install-deepspeech.sh")
model=${1:-$ds/armspeech/model.tflite}
runs=${2:-3}
command -v sox >/dev/null || { apt-get update -qq && apt-get install -y -qq sox libsox-fmt-all; } >/dev/null
mkdir -p "$cache/bench"
audio="$cache/bench/deepspeech-60s.wav"
if [[ ! -f "$audio" ]]; then
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  i=0
  for f in "$shared"/eval/real/audio/*.wav; do
    sox -q "$f" -r 16000 -c 1 -b 16 "$tmp/$(printf %05d $i).wav" 2>/dev/null && i=$((i+1))
  done
  sox -q "$tmp"/*.wav "$tmp/all.wav"
  sox -q "$tmp/all.wav" "$audio.part.wav" trim 0 60
  mv "$audio.part.wav" "$audio"
fi
python3 "$here/deepspeech_bench.py" --lib "$ds/libdeepspeech.so" --model "$model" \
  --harken "$bin" --audio "$audio" --runs "$runs"
# With a scorer: an Armenian trigram package made by Harken (scripts/ds/check.sh checks the
# client gives the same transcripts with it), or $HARKEN_DS_SCORER.
scorer=${HARKEN_DS_SCORER:-}
if [[ -z "$scorer" ]]; then
  scorer="$cache/bench/armspeech-lm.scorer"
  "$bin" lm build "$root/testdata/deepspeech/armspeech-lm.txt" --order 3 -o "$scorer.arpa" >/dev/null
  "$bin" lm convert "$scorer.arpa" -o "$scorer" --alphabet "$model" >/dev/null 2>&1
fi
python3 "$here/deepspeech_bench.py" --lib "$ds/libdeepspeech.so" --model "$model" \
  --harken "$bin" --audio "$audio" --runs "$runs" --scorer "$scorer"
