#!/usr/bin/env bash
# CMU Sphinx import on the real file: the en-US `.lm.bin` from the SpeechRecognition wheel
# (scripts/install-sphinx-lm.sh) read by Harken, against the team's ARPA conversion of the same
# file made with (patched) pocketsphinx (../shared/lm/en-us-sphinx-3gram.arpa.gz).
#
#   bench/lm/sphinx.sh
#
# Prints: conversion time, n-gram counts and the reader's report, whether both hold the same
# n-grams (of an n-gram the ARPA lists twice, its first line counts), the largest differences
# (the ARPA has 4 decimals), and held-out perplexity of both on the shared eval sentences.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
harken=${HARKEN_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/harken}
lmbin=$("$root/scripts/install-sphinx-lm.sh")
ref=$root/../shared/lm/en-us-sphinx-3gram.arpa.gz
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "file: $lmbin ($(stat -c %s "$lmbin") bytes)"
/usr/bin/time -f "convert: %e s wall, %M KB peak RSS" "$harken" lm convert "$lmbin" -o "$work/h.arpa" 2>&1
python3 - "$work/h.arpa" "$ref" <<'PY'
import gzip, sys
def read(path):
    op = gzip.open if path.endswith(".gz") else open
    grams, order, repeats = {}, 0, 0
    with op(path, "rb") as f:
        for raw in f:
            line = raw.rstrip(b"\n")
            if line.startswith(b"\\") and line.endswith(b"-grams:"):
                order = int(line[1:line.index(b"-")]); continue
            if order == 0 or not line or line.startswith(b"\\"):
                continue
            # Harken writes words as UTF-8; the reference keeps Sphinx's Latin-1 bytes.
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError:
                line = line.decode("latin-1")
            parts = line.split()
            key = (order, " ".join(parts[1:1 + order]))
            if key in grams:
                repeats += 1; continue
            grams[key] = (float(parts[0]), float(parts[1 + order]) if len(parts) > 1 + order else None)
    return grams, repeats
ours, r1 = read(sys.argv[1])
ref, r2 = read(sys.argv[2])
for k in (1, 2, 3):
    a = sum(1 for o, _ in ours if o == k); b = sum(1 for o, _ in ref if o == k)
    print(f"order {k}: harken {a:,}, reference ARPA {b:,} distinct")
print(f"repeated n-gram lines: harken {r1}, reference ARPA {r2}")
print("same n-grams:", set(ours) == set(ref))
dp = max(abs(ours[g][0] - ref[g][0]) for g in ref if g in ours)
db = max(abs(ours[g][1] - ref[g][1]) for g in ref if g in ours and ref[g][1] is not None and ours[g][1] is not None)
print(f"max |Δ log10 p| {dp:.2e}, max |Δ back-off| {db:.2e} (the reference has 4 decimals)")
PY
"$root/bench/lm/eval_text.py" "$root/../shared/eval" "$work/text.txt"
for m in "$lmbin" "$ref"; do
  printf '%-48s ' "$(basename "$m")"; "$harken" lm eval "$m" "$work/text.txt" | awk '/^perplexity/{print "perplexity excl. OOV", $5}'
done
