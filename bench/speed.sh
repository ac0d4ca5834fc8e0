#!/usr/bin/env bash
# The speed issue's table in one run: Harken int8 (best kernel path — AMX where the CPU has it —
# HARKEN_CPU=avx512 and HARKEN_CPU=avx2) and f32 beside faster-whisper int8 and float32, same
# model, same audio, 2 threads, beam 5, VAD off.
#
#   bench/speed.sh [--runs N] [--skip-wer]
#
# Sections (each a bench/compare.py run; JSON and TSV under ~/.cache/harken/bench/):
#   base-10s     Whisper base, ../shared/eval/real/audio/mv_beckett.wav: transcription min/median,
#                cold start, peak RSS, load time, stages
#   base-112s    the 112-s recording ../shared/eval/real/audio/codec2_ve9qrp.wav (RTF)
#   base-3min    a 3-min dialogue: ../shared/eval/other/audio/endgame_nagg_nell.wav seven times
#   tiny-10s     tiny.en on the 10-s clip
#   wer          corpus WER on ../shared/eval/dev and eval/real for every Harken configuration and
#                faster-whisper int8 (skipped with --skip-wer)
# Installs the models and their int8 copies first (scripts/install-models.sh all).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
runs=5 wer=1
while [[ $# -gt 0 ]]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --skip-wer) wer=0; shift ;;
    *) echo "usage: $0 [--runs N] [--skip-wer]" >&2; exit 2 ;;
  esac
done
cache=${HARKEN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/harken}
models="$cache/models" out="$cache/bench" shared="$root/../shared"
mkdir -p "$out"
"$root/scripts/install-models.sh" all >&2
export HARKEN_BIN=${HARKEN_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/harken}
[[ -x "$HARKEN_BIN" ]] || (cd "$root" && cargo build --release --locked -p harken-cli >&2)
dialogue="$out/dialogue-3min.wav"
if [[ ! -f "$dialogue" ]]; then
  python3 - "$shared/eval/other/audio/endgame_nagg_nell.wav" "$dialogue" <<'PY'
import sys, wave
src, dst = sys.argv[1:3]
with wave.open(src) as w:
    params, frames = w.getparams(), w.readframes(w.getnframes())
with wave.open(dst + ".part", "wb") as o:
    o.setparams(params)
    for _ in range(7):
        o.writeframes(frames)
import os; os.replace(dst + ".part", dst)
PY
fi
stamp=$(date +%Y%m%d-%H%M%S)
base=(--model "$models/whisper-base" --harken-model "$models/whisper-base-int8" --harken-precision int8)
tiny=(--model "$models/whisper-tiny.en" --harken-model "$models/whisper-tiny.en-int8" --harken-precision int8)
engines=harken,harken-avx512,harken-avx2,harken-f32,fw
section() { # name args...
  local name=$1; shift
  echo "== $name" >&2
  "$here/run.sh" "$@" --json "$out/speed-$stamp-$name.json" | tee "$out/speed-$stamp-$name.txt"
}
section base-10s "${base[@]}" --engines "$engines" --skip-wer --runs "$runs"
section base-112s "${base[@]}" --engines harken,harken-avx512,harken-avx2,fw --skip-wer --runs 3 --clip "$shared/eval/real/audio/codec2_ve9qrp.wav"
section base-3min "${base[@]}" --engines harken,harken-avx512,harken-avx2,fw --skip-wer --runs 3 --clip "$dialogue"
section tiny-10s "${tiny[@]}" --engines "$engines" --skip-wer --runs "$runs"
if [[ $wer == 1 ]]; then
  section wer "${base[@]}" --engines harken,harken-avx512,harken-avx2,harken-f32,fw-int8 --skip-speed
fi
echo "results: $out/speed-$stamp-*.txt" >&2
