#!/usr/bin/env bash
# The size ladder of an LM: full, 1/4, 1/16 and 1/64 of its binary size by relative-entropy
# pruning (f32 and 8-bit), with held-out perplexity (excluding and including OOVs) and the OOV
# rate. A rung the unigrams alone exceed shrinks the vocabulary first (LADDER_VOCAB words, 16000
# by default). The decoding work turns it into WER. Note: perplexity including OOVs is only
# comparable between rungs with the same vocabulary (a shrunk one scores dropped words as <unk>,
# a class; the full model has no <unk> and charges -100).
#
#   bench/lm/ladder.sh [MODEL.arpa[.gz]] [TEXT]
#   (defaults: ../shared/lm/en-us-sphinx-3gram.arpa.gz and the shared eval sentences)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
harken=${HARKEN_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/harken}
model=${1:-$root/../shared/lm/en-us-sphinx-3gram.arpa.gz}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [[ -n ${2:-} ]]; then text=$2; else
  text="$work/text.txt"
  "$root/bench/lm/eval_text.py" "$root/../shared/eval" "$text"
fi
"$harken" lm convert "$model" -o "$work/full.bin" >/dev/null
full=$(stat -c %s "$work/full.bin")
printf '%-8s %-6s %8s %12s %12s %28s %10s %10s %6s\n' rung format vocab budget bytes n-grams ppl_excl ppl_incl oov%
for q in "" --quantize; do
  fmt=${q:+8-bit}; fmt=${fmt:-f32}
  for div in 1 4 16 64; do
    budget=$((full / div))
    # Stolcke pruning keeps every unigram; where they alone exceed the budget, keep the
    # ${LADDER_VOCAB:-16000} most probable words (the rest become <unk>, which takes their mass).
    vocab=all; extra=()
    if ! out=$("$harken" lm prune "$work/full.bin" --max-bytes "$budget" -o "$work/r.bin" $q 2>&1); then
      vocab=${LADDER_VOCAB:-16000}; extra=(--max-vocab "$vocab")
      out=$("$harken" lm prune "$work/full.bin" --max-bytes "$budget" -o "$work/r.bin" $q "${extra[@]}" 2>&1) || {
        printf '%-8s %-6s %8s %12d %s\n' "1/$div" "$fmt" "$vocab" "$budget" "not reachable: ${out##*: }"; continue; }
    fi
    bytes=$(stat -c %s "$work/r.bin")
    grams=$(echo "$out" | sed -n 's/.*n-grams \([0-9/]*\).*/\1/p')
    ev=$("$harken" lm eval "$work/r.bin" "$text")
    incl=$(echo "$ev" | sed -n 's/^perplexity *\([0-9.]*\) (incl. OOV).*/\1/p')
    excl=$(echo "$ev" | sed -n 's/.*(incl. OOV) *\([0-9.]*\) (excl. OOV).*/\1/p')
    oov=$(echo "$ev" | sed -n 's/.*OOV [0-9]* (\([0-9.]*\)%).*/\1/p')
    printf '%-8s %-6s %8s %12d %12d %28s %10s %10s %6s\n' "1/$div" "$fmt" "$vocab" "$budget" "$bytes" "$grams" "$excl" "$incl" "$oov"
  done
done
