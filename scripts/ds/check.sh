#!/usr/bin/env bash
# Harken's DeepSpeech path against the official client (libdeepspeech 0.9.3) on a real Coqui STT
# model: identical transcripts (one call, streamed in chunks, and through the CLI), features
# within 1e-5 and probabilities within 1e-4 of the client's own. Part of scripts/test.sh.
#
#   scripts/ds/check.sh PYTHON HARKEN_BINARY TRACE_BINARY
#   (PYTHON needs numpy; TRACE_BINARY is the harken-engine example `deepspeech_trace`)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
python=$1 harken=$2 trace=$3
ds=$("$root/scripts/install-deepspeech.sh")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A longer input made of the fixtures with pauses: several 16-step batches, LSTM state carried.
"$python" - "$root/testdata/audio" "$work/joined.wav" <<'PY'
import sys, wave
src, out = sys.argv[1], sys.argv[2]
frames = b""
for name in ["numbers_16k.wav", "speech_16k_s16.wav", "silence_2s.wav", "speech_16k_s16.wav"]:
    with wave.open(f"{src}/{name}", "rb") as w:
        frames += w.readframes(w.getnframes()) + b"\0\0" * 4000
with wave.open(out, "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000); w.writeframes(frames)
PY
files=("$root/testdata/audio/numbers_16k.wav" "$root/testdata/audio/speech_16k_s16.wav"
       "$root/testdata/audio/silence_2s.wav" "$work/joined.wav")
common=(--lib "$ds/libdeepspeech.so" --model "$ds/armspeech/model.tflite" --shim "$ds/logtrace.so"
        --trace "$trace" --harken "$harken")
echo "model's beam width, 1234-sample chunks:" >&2
"$python" "$root/scripts/ds/reference.py" check "${common[@]}" --chunk 1234 "${files[@]}"
echo "beam 16, 160-sample chunks:" >&2
"$python" "$root/scripts/ds/reference.py" check "${common[@]}" --beam 16 --chunk 160 "${files[@]}"
