#!/usr/bin/env bash
# Soak: `harken serve` under a mixed load for a long time (bench/soak_load.py), with RSS, open
# file descriptors and threads sampled every 10 s, latency percentiles per minute, statuses,
# and a verdict (flat RSS, no fd/thread growth, no 5xx but 503). Draws soak.png with
# bench/soak_plot.py.
#
#   bench/soak.sh [--duration 3600] [--model base] [--workers 2] [--clients 3] [--max-file 600]
#                 [--out DIR]
#
# The CI variant (scripts/test.sh): --ci --duration 120 --model tiny.en --max-file 60 (fails on
# statuses, transport errors and fd growth; RSS and threads are reported, too short to judge).
# Inputs are rendered with sox from testdata/ (speech repeated to 1 s ... 10 min; WAV, FLAC,
# OGG/Vorbis, and the MP3/WebM fixtures), so the soak needs no ../shared.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cache=${HARKEN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/harken}
bin=${HARKEN_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/harken}
duration=3600 model=base workers=2 clients=3 max_file=600 out= plot=1 ci=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --duration) duration=$2; shift 2 ;; --model) model=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;; --clients) clients=$2; shift 2 ;;
    --max-file) max_file=$2; shift 2 ;; --out) out=$2; shift 2 ;; --no-plot) plot=0; shift ;; --ci) ci=(--ci); plot=0; shift ;;
    *) sed -n '2,12p' "$0" >&2; exit 2 ;;
  esac
done
[[ -x $bin ]] || { echo "soak: no harken binary at $bin" >&2; exit 2; }
out=${out:-$root/bench/results/soak-$model-${duration}s}
mkdir -p "$out"
files=$(mktemp -d); speech=$(mktemp -d)/speech.wav; log="$out/server.log"; pid=
cleanup() { if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; fi; rm -rf "$files" "$(dirname "$speech")"; }
trap cleanup EXIT

# Inputs: "<seconds>s_<name>"; speech is the numbers clip and the sentence clip, repeated.
sox "$root/testdata/audio/numbers_16k.wav" "$root/testdata/audio/speech_16k_s16.wav" "$speech"
len=$(soxi -D "$speech")
for secs in 1 3 20 60 180 600; do
  (( secs <= max_file )) || continue
  reps=$(python3 -c "import math; print(max(0, math.ceil($secs / $len) - 1))")
  sox "$speech" "$files/${secs}s_speech.wav" repeat "$reps" trim 0 "$secs"
done
sox "$files/20s_speech.wav" "$files/20s_speech.flac"
sox "$files/20s_speech.wav" "$files/20s_speech.ogg"
cp "$root/testdata/audio/speech.mp3" "$files/3s_speech.mp3"
cp "$root/testdata/audio/speech.webm" "$files/3s_speech.webm"

port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
HARKEN_LOG=info "$bin" serve --host 127.0.0.1 --port "$port" --model "$model" --workers "$workers" \
  --queue 8 --threads "$(nproc)" --max-body-bytes $((64 * 1024 * 1024)) >"$log" 2>&1 &
pid=$!
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/ping" >/dev/null && break; sleep 0.2; done
curl -sf "http://127.0.0.1:$port/ping" >/dev/null || { tail "$log" >&2; exit 1; }
echo "soak: $model, $workers workers, $clients clients, ${duration} s, files up to ${max_file} s; results in $out"
status=0
python3 "$here/soak_load.py" --url "http://127.0.0.1:$port" --pid "$pid" --files "$files" \
  --duration "$duration" --clients "$clients" --out "$out" "${ci[@]}" || status=$?
kill -TERM "$pid"; wait "$pid" || { echo "soak: the server did not exit cleanly" >&2; status=1; }
pid=
if (( plot )); then
  venv="$cache/bench-venv"
  [[ -x $venv/bin/python ]] || python3 -m venv "$venv"
  "$venv/bin/python" -c "import matplotlib" 2>/dev/null ||
    "$venv/bin/pip" install --quiet --disable-pip-version-check "matplotlib>=3.8"
  "$venv/bin/python" "$here/soak_plot.py" "$out"
fi
exit $status
