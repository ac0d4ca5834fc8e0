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

# Scorer packages: an Armenian trigram LM from the model's own transcripts. Harken writes the
# scorer; its KenLM part must be byte-identical to KenLM's build_binary -a 255 -q 8 -v trie
# (the flags DeepSpeech used), and a scorer made from build_binary's own file by appending the
# trie must be the same file. Then the client and Harken decode with it: identical transcripts
# at the model's beam, at beam 16 streamed in 160-sample chunks, and with α/β and hot words.
kenlm=$("$root/scripts/install-kenlm.sh")
model="$ds/armspeech/model.tflite"
"$harken" lm build "$root/testdata/deepspeech/armspeech-lm.txt" --order 3 -o "$work/arm.arpa" >/dev/null
"$harken" lm convert "$work/arm.arpa" -o "$work/arm.scorer" --alphabet "$model" >/dev/null
"$kenlm/build_binary" -a 255 -q 8 -v trie "$work/arm.arpa" "$work/arm.kenlm" >/dev/null 2>&1
cmp -n "$(stat -c %s "$work/arm.kenlm")" "$work/arm.kenlm" "$work/arm.scorer"
"$harken" lm convert "$work/arm.kenlm" -o "$work/arm-kenlm.scorer" --alphabet "$model" \
  --scorer-vocab "$root/testdata/deepspeech/armspeech-lm.txt" >/dev/null
cmp "$work/arm.scorer" "$work/arm-kenlm.scorer"
echo "scorer: KenLM part identical to build_binary's ($(stat -c %s "$work/arm.kenlm") bytes)" >&2
# A 4-gram with pruned contexts too (KenLM's blank n-grams), from the same text.
"$kenlm/lmplz" --order 4 --discount_fallback --prune 0 0 1 -S 200M -T "$work" \
  < "$root/testdata/deepspeech/armspeech-lm.txt" > "$work/arm4.arpa" 2>/dev/null
"$harken" lm convert "$work/arm4.arpa" -o "$work/arm4.scorer" --alphabet "$model" >/dev/null
"$kenlm/build_binary" -a 255 -q 8 -v trie "$work/arm4.arpa" "$work/arm4.kenlm" >/dev/null 2>&1
cmp -n "$(stat -c %s "$work/arm4.kenlm")" "$work/arm4.kenlm" "$work/arm4.scorer"
echo "scorer, model's beam width:" >&2
"$python" "$root/scripts/ds/reference.py" check "${common[@]}" --scorer "$work/arm.scorer" "${files[@]}"
echo "4-gram scorer, beam 16, 160-sample chunks:" >&2
"$python" "$root/scripts/ds/reference.py" check "${common[@]}" --scorer "$work/arm4.scorer" \
  --beam 16 --chunk 160 "${files[@]}"
echo "scorer, beam 64, α 1.7, β 0.4, hot words:" >&2
"$python" "$root/scripts/ds/reference.py" check "${common[@]}" --scorer "$work/arm.scorer" \
  --beam 64 --alpha 1.7 --beta 0.4 --hot-word "սե:3.5" --hot-word "ի:-2.25" "${files[@]}"
