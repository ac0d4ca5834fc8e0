#!/usr/bin/env bash
# Load time, peak RSS and transcription time with a scorer of more than 500 MB, Harken against
# the official client (libdeepspeech 0.9.3), side by side (bench/deepspeech_bench.py).
#
#   bench/deepspeech-big-scorer.sh [SENTENCES] [RUNS]      (default 4000000 sentences, 2 runs)
#   BUILD_ONLY=1 bench/deepspeech-big-scorer.sh            (make the scorer, measure nothing)
#
# No public Armenian corpus is reachable here, so the scorer's text is English drawn from the
# shared CMU Sphinx trigram (`harken lm sample`), spelled letter for letter in 27 Armenian
# letters so that it fits the armspeech model's alphabet: a real 5-gram LM by KenLM's lmplz
# (unpruned), a trie binary by build_binary with DeepSpeech's flags (-a 255 -q 8 -v trie) and
# the vocabulary FST appended by `harken lm convert` — the way generate_scorer_package made
# DeepSpeech's English scorer. Its words mean nothing to the model; what is measured is what
# a scorer of this size costs to open and to decode with. Files are kept under the cache
# ($HARKEN_CACHE_DIR/bench/big-scorer), each step skipped when its output exists.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root="$here/.."
shared=${HARKEN_SHARED:-$root/../shared}
cache=${HARKEN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/harken}
bin=${HARKEN_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/harken}
sentences=${1:-4000000}
runs=${2:-2}
[[ -x "$bin" ]] || { echo "big-scorer bench: no harken binary at $bin (cargo build --release)" >&2; exit 2; }
lm="$shared/lm/en-us-sphinx-3gram.arpa.gz"
[[ -f "$lm" ]] || { echo "big-scorer bench: $lm is missing" >&2; exit 2; }
ds=$("$root/scripts/install-deepspeech.sh")
kenlm=$("$root/scripts/install-kenlm.sh")
model="$ds/armspeech/model.tflite"
work="$cache/bench/big-scorer"
mkdir -p "$work"
scorer="$work/big-$sentences.scorer"
step() { echo "[$(date +%H:%M:%S)] $*" >&2; }

if [[ ! -f "$scorer" ]]; then
  text="$work/text-$sentences.txt"
  if [[ ! -f "$text" ]]; then
    step "drawing $sentences sentences from the Sphinx trigram"
    "$bin" lm sample "$lm" --sentences "$sentences" --seed 7 -o "$text.en"
    # a-z and the apostrophe onto 27 Armenian letters, one for one (lower-case already).
    python3 - "$text.en" "$text.part" <<'PY'
import sys
src = "abcdefghijklmnopqrstuvwxyz'"
dst = "աբգդեզէըթժիլխծկհձղճմյնշոչպջ"
table = str.maketrans(src, dst)
keep = set(src) | {" ", "\n"}
with open(sys.argv[1], encoding="utf-8") as f, open(sys.argv[2], "w", encoding="utf-8") as out:
    for line in f:
        line = "".join(c for c in line.lower() if c in keep)
        out.write(" ".join(line.split()).translate(table) + "\n")
PY
    mv "$text.part" "$text"
    rm -f "$text.en"
  fi
  words=$(wc -w < "$text")
  bin_lm="$work/big-$sentences.kenlm"
  if [[ ! -f "$bin_lm" ]]; then
    step "lmplz -o 5 on $words words"
    "$kenlm/lmplz" -o 5 -S 40% -T "$work" --discount_fallback < "$text" > "$work/big.arpa" 2> "$work/lmplz.log"
    step "build_binary -a 255 -q 8 -v trie"
    "$kenlm/build_binary" -a 255 -q 8 -v trie "$work/big.arpa" "$bin_lm.part" > "$work/build_binary.log" 2>&1
    mv "$bin_lm.part" "$bin_lm"
    rm -f "$work/big.arpa"
  fi
  step "vocabulary FST (harken lm convert)"
  tr ' ' '\n' < "$text" | grep -v '^$' | sort -u > "$work/vocab.txt"
  "$bin" lm convert "$bin_lm" -o "$scorer" --alphabet "$model" --scorer-vocab "$work/vocab.txt" >&2
fi
ls -l "$scorer" >&2
"$bin" lm info "$scorer" --alphabet "$model" >&2
[[ -n ${BUILD_ONLY:-} ]] && exit 0

# 10 s of real speech (from bench/deepspeech.sh's 60-s file, made when missing).
audio="$cache/bench/deepspeech-10s.wav"
if [[ ! -f "$audio" ]]; then
  long="$cache/bench/deepspeech-60s.wav"
  command -v sox >/dev/null || { apt-get update -qq && apt-get install -y -qq sox libsox-fmt-all; } >/dev/null
  [[ -f "$long" ]] || { echo "big-scorer bench: run bench/deepspeech.sh once first (it makes $long)" >&2; exit 2; }
  sox -q "$long" "$audio" trim 0 10
fi
# Page cache warm for both (each engine's first run reads the file from disk).
cat "$scorer" > /dev/null
python3 "$here/deepspeech_bench.py" --lib "$ds/libdeepspeech.so" --model "$model" \
  --harken "$bin" --audio "$audio" --runs "$runs" --scorer "$scorer"
