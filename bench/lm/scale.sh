#!/usr/bin/env bash
# Estimation and loading at scale, Harken against KenLM in the same run.
#
#   bench/lm/scale.sh [MODEL] [SENTENCES]
#   (defaults: ../shared/lm/en-us-sphinx-3gram.arpa.gz, 600000 sentences ≈ 8 M words, 44 MB)
#
# 1. Corpus: no large real text is available here, so `harken lm sample` draws SENTENCES
#    sentences from MODEL (seed 1) and 5,000 held-out ones (seed 2).
# 2. Order-5 estimation from that text: `harken lm build -S 256MB` (counts sorted on disk),
#    `-S 8GB` (all in memory) and `lmplz -o 5 -S 256M`: wall time, peak RSS, n-gram counts,
#    ARPA bytes; held-out perplexity of both ARPAs (Harken's `lm eval` on each, and KenLM's
#    `query` on its own).
# 3. Loading the order-5 model as a binary: Harken (mmap) against KenLM's trie and probing
#    formats with `query`'s default load: seconds to load and exit on an empty input, warm
#    (file in the page cache) and cold (evicted with posix_fadvise DONTNEED before each run;
#    no root needed), min and median of 3, with peak RSS; then peak RSS after scoring the
#    held-out text, to show which pages queries touch.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
harken=${HARKEN_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/harken}
kbin=$("$root/scripts/install-kenlm.sh")
model=${1:-$root/../shared/lm/en-us-sphinx-3gram.arpa.gz}
sentences=${2:-600000}
work=${SCALE_WORK:-$(mktemp -d)}
[[ -n ${SCALE_WORK:-} ]] || trap 'rm -rf "$work"' EXIT
cd "$work"

echo "== corpus: $sentences sentences drawn from $(basename "$model")"
"$harken" lm convert "$model" -o source.bin >/dev/null
"$harken" lm sample source.bin --sentences "$sentences" --seed 1 -o train.txt
"$harken" lm sample source.bin --sentences 5000 --seed 2 -o heldout.txt
wc -lwc train.txt | awk '{printf "train: %d lines, %d words, %.1f MB\n", $1, $2, $3/1e6}'
: > empty.txt

measure() { # label, command... → "label wall_s peak_MB"
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o time.txt "$@" >out.txt 2>log.txt
  read -r s kb < time.txt
  printf '%-34s %8.1f s %8.0f MB\n' "$label" "$s" "$((kb / 1024))"
}
echo
echo "== order-5 estimation (2 cores; wall, peak RSS)"
measure "harken lm build -S 256MB" "$harken" lm build train.txt --order 5 -S 256MB -T . -o h.arpa
sed 's/.*s; /  /' out.txt
measure "harken lm build -S 8GB" "$harken" lm build train.txt --order 5 -S 8GB -T . -o h8g.arpa
measure "lmplz -o 5 -S 256M" "$kbin/lmplz" -o 5 -S 256M -T . --discount_fallback --text train.txt --arpa k.arpa
cmp -s h.arpa h8g.arpa && echo "  -S 256MB and -S 8GB wrote identical ARPA files" || echo "  WARNING: -S 256MB and -S 8GB differ"
rm -f h8g.arpa
for f in h.arpa k.arpa; do
  printf '  %-7s %s, %d bytes\n' "$f" "$(awk -F= '/^ngram /{printf "%s/", $2} /^\\1-grams/{exit}' "$f" | sed 's,/$,,')" "$(stat -c %s "$f")"
done
"$harken" lm convert h.arpa -o h.bin >/dev/null
"$harken" lm convert k.arpa -o k.bin >/dev/null
ph=$("$harken" lm eval h.bin heldout.txt | awk '/^perplexity/{print $2}')
pk=$("$harken" lm eval k.bin heldout.txt | awk '/^perplexity/{print $2}')
pq=$("$kbin/query" -v summary k.arpa < heldout.txt 2>/dev/null | awk -F'\t' '/Perplexity including OOVs/{print $2}')
python3 -c "print(f'  held-out perplexity: harken-built {$ph}, lmplz-built {$pk} (ratio {$ph/$pk:.5f}); KenLM query on lmplz-built {$pq}')"

echo
echo "== loading the order-5 model as a binary"
"$kbin/build_binary" trie k.arpa k-trie.bin >/dev/null 2>&1
"$kbin/build_binary" probing k.arpa k-probing.bin >/dev/null 2>&1
rm -f k.arpa k.bin
run_stats() { # mode(cold|warm|once) file stdin-file command... → "min median peakMB" over 3 runs
  # (1 for once); wall time by perf_counter, peak RSS of the child from wait4.
  python3 - "$@" <<'PY'
import os, subprocess, sys, time
mode, file, stdin, cmd = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
ts, rss = [], 0
for _ in range(1 if mode == "once" else 3):
    fd = os.open(file, os.O_RDONLY)
    if mode == "cold":
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    else:
        while os.read(fd, 1 << 24):
            pass
    os.close(fd)
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdin=open(stdin), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    ts.append(time.perf_counter() - t)
    if status != 0:
        sys.exit(f"{cmd} failed ({status})")
    rss = ru.ru_maxrss // 1024
ts.sort()
print(f"{ts[0]:.4f} {ts[len(ts) // 2]:.4f} {rss}")
PY
}
printf '%-16s %10s %10s %10s %10s %10s %8s\n' format bytes "cold min" "cold med" "warm min" "warm med" "load MB"
for pair in "harken f32|h.bin|$harken lm eval h.bin" "kenlm trie|k-trie.bin|$kbin/query k-trie.bin" "kenlm probing|k-probing.bin|$kbin/query k-probing.bin"; do
  IFS='|' read -r name file cmd <<< "$pair"
  arg=(); [[ $name == harken* ]] && arg=(empty.txt)
  read -r c0 c1 _ < <(run_stats cold "$file" empty.txt $cmd "${arg[@]}")
  read -r w0 w1 mb < <(run_stats warm "$file" empty.txt $cmd "${arg[@]}")
  printf '%-16s %10d %9.1fms %9.1fms %9.1fms %9.1fms %8d\n' "$name" "$(stat -c %s "$file")" \
    "$(echo "$c0*1000" | bc)" "$(echo "$c1*1000" | bc)" "$(echo "$w0*1000" | bc)" "$(echo "$w1*1000" | bc)" "$mb"
done
echo
echo "peak RSS (MB) after scoring the first N held-out sentences, model evicted from the page cache first"
printf '%-16s' format; for n in 10 100 1000 5000; do printf '%10s' "N=$n"; done; echo
for pair in "harken f32|h.bin|$harken lm eval h.bin" "kenlm trie|k-trie.bin|$kbin/query k-trie.bin" "kenlm probing|k-probing.bin|$kbin/query k-probing.bin"; do
  IFS='|' read -r name file cmd <<< "$pair"
  printf '%-16s' "$name"
  for n in 10 100 1000 5000; do
    head -n "$n" heldout.txt > part.txt
    arg=(); [[ $name == harken* ]] && arg=(part.txt)
    read -r _ _ mb < <(run_stats cold "$file" part.txt $cmd "${arg[@]}" | sed 's/^/x /; s/^x //')
    printf '%10d' "$mb"
  done
  echo
done
