#!/usr/bin/env bash
# Harken's LM binary against KenLM's tools on the same ARPA model, in one run:
# bytes per n-gram (Harken f32 / 8-bit, each with and without n-gram hash indexes, vs KenLM
# probing / trie / trie -q 8 -b 8), load time
# (Harken mmap vs KenLM query's default populate load), and query throughput on the same text.
#
#   bench/lm/compare.sh [MODEL.arpa[.gz]] [TEXT]
#   (defaults: ../shared/lm/en-us-sphinx-3gram.arpa.gz, the shared eval sentences ×400)
#
# Throughput: both tools read the text and score every token incl. </s>; each tool's time on
# an empty input (its load and exit) is subtracted, so the figure is queries per second of
# scoring. KenLM's `query` prints a line per sentence; Harken's `lm eval` does not print per
# word. Min and median of 3 runs. Last column: perplexity excluding OOVs of each format on the
# text (8-bit formats against the full-precision ones).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
harken=${HARKEN_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/harken}
kbin=$("$root/scripts/install-kenlm.sh")
model=${1:-$root/../shared/lm/en-us-sphinx-3gram.arpa.gz}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# KenLM wants \data\ first: drop any leading comment (CMU Sphinx writes one).
if [[ $model == *.gz ]]; then zcat "$model"; else cat "$model"; fi | sed -n '/^\\data\\/,$p' > "$work/m.arpa"
if [[ -n ${2:-} ]]; then text=$2; else
  text="$work/text.txt"
  "$root/bench/lm/eval_text.py" "$root/../shared/eval" "$text" --repeat 400
fi
tokens=$(awk '{n += NF + 1} END {print n}' "$text")
ngrams=$(awk -F= '/^ngram /{s += $2} END {print s}' "$work/m.arpa")
"$harken" lm convert "$work/m.arpa" -o "$work/h.bin" >/dev/null
"$harken" lm convert "$work/m.arpa" -o "$work/h8.bin" --quantize >/dev/null
"$harken" lm convert "$work/m.arpa" -o "$work/hx.bin" --hash-index >/dev/null
"$harken" lm convert "$work/m.arpa" -o "$work/hx8.bin" --hash-index --quantize >/dev/null
"$kbin/build_binary" probing "$work/m.arpa" "$work/k-probing.bin" >/dev/null 2>&1
"$kbin/build_binary" trie "$work/m.arpa" "$work/k-trie.bin" >/dev/null 2>&1
"$kbin/build_binary" -q 8 -b 8 trie "$work/m.arpa" "$work/k-trie8.bin" >/dev/null 2>&1
echo "model: $ngrams n-grams; text: $tokens tokens"
echo
printf '%-26s %12s %12s\n' format bytes bytes/n-gram
for f in h.bin:"harken f32" h8.bin:"harken 8-bit" hx.bin:"harken f32 +hash" hx8.bin:"harken 8-bit +hash" k-probing.bin:"kenlm probing" k-trie.bin:"kenlm trie" k-trie8.bin:"kenlm trie -q8 -b8"; do
  b=$(stat -c %s "$work/${f%%:*}")
  printf '%-26s %12d %12.2f\n' "${f#*:}" "$b" "$(echo "$b / $ngrams" | bc -l)"
done
: > "$work/empty.txt"
time_of() { # runs... → seconds (min, median) of the command
  python3 - "$@" <<'PY'
import subprocess, sys, time
cmd, stdin = sys.argv[1:-1], sys.argv[-1]
ts = []
for _ in range(3):
    t = time.perf_counter()
    subprocess.run(cmd, stdin=open(stdin), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    ts.append(time.perf_counter() - t)
ts.sort()
print(f"{ts[0]:.4f} {ts[1]:.4f}")
PY
}
echo
printf '%-26s %10s %10s %14s %14s %12s\n' "" "load min" "load med" "queries/s min" "queries/s med" "ppl excl OOV"
for pair in "harken f32|$harken lm eval $work/h.bin" "harken 8-bit|$harken lm eval $work/h8.bin" "harken f32 +hash|$harken lm eval $work/hx.bin" "harken 8-bit +hash|$harken lm eval $work/hx8.bin" "kenlm probing|$kbin/query $work/k-probing.bin" "kenlm trie|$kbin/query $work/k-trie.bin" "kenlm trie -q8 -b8|$kbin/query $work/k-trie8.bin"; do
  name=${pair%%|*}; cmd=(${pair#*|})
  if [[ $name == harken* ]]; then
    read -r l0 l1 < <(time_of "${cmd[@]}" "$work/empty.txt" /dev/null)
    read -r r0 r1 < <(time_of "${cmd[@]}" "$text" /dev/null)
  else
    read -r l0 l1 < <(time_of "${cmd[@]}" "$work/empty.txt")
    read -r r0 r1 < <(time_of "${cmd[@]}" "$text")
  fi
  # Perplexity of each format on the same text (OOVs excluded: the shared model has no <unk>).
  if [[ $name == harken* ]]; then
    ppl=$("${cmd[@]}" "$text" | awk '/^perplexity/{print $5}')
  else
    ppl=$("${cmd[0]}" -v summary "${cmd[@]:1}" < "$text" 2>/dev/null | awk -F'\t' '/Perplexity excluding OOVs/{print $2}')
  fi
  python3 -c "
l0,l1,r0,r1,n=$l0,$l1,$r0,$r1,$tokens
print(f'{\"$name\":<26} {l0*1000:9.1f}ms {l1*1000:9.1f}ms {n/max(r0-l0,1e-9):14.0f} {n/max(r1-l1,1e-9):14.0f} {float(\"$ppl\"):12.3f}')"
done
