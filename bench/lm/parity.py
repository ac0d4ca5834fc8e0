#!/usr/bin/env python3
"""Harken's LM queries against KenLM's on the same ARPA model and held-out text.

    bench/lm/parity.py MODEL.arpa[.gz] TEXT [--harken BIN]

Per-token log10 probabilities (with <s> and </s>) from `harken lm eval --per-word` on the
unquantized binary are compared with KenLM's `full_scores` (PyPI `kenlm`); perplexity of the
8-bit quantized binary is compared with KenLM's perplexity. Prints max |diff| and the ratios;
exits 1 if the issue's bounds (1e-4 per word, 1% perplexity) are not met.
"""
import argparse
import gzip
import math
import os
import subprocess
import sys
import tempfile

import kenlm


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("text")
    ap.add_argument("--harken", default=os.environ.get("HARKEN_BIN", "harken"))
    a = ap.parse_args()
    lines = [l.split() for l in open(a.text, encoding="utf-8") if l.split()]
    tmp = tempfile.mkdtemp()
    # KenLM insists that \data\ is the first non-empty line; some ARPA writers (CMU Sphinx) put a
    # comment first. Both tools read the same copy without it.
    opener = gzip.open if a.model.endswith(".gz") else open
    clean = os.path.join(tmp, "model.arpa")
    with opener(a.model, "rb") as src, open(clean, "wb") as dst:
        seen_data = False
        for line in src:
            if not seen_data:
                if line.strip() != b"\\data\\":
                    continue
                seen_data = True
            dst.write(line)
    a.model = clean
    k = kenlm.Model(a.model)
    full, quant = os.path.join(tmp, "f.bin"), os.path.join(tmp, "q.bin")
    subprocess.run([a.harken, "lm", "convert", a.model, "-o", full], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([a.harken, "lm", "convert", a.model, "-o", quant, "--quantize"], check=True, stdout=subprocess.DEVNULL)
    textfile = os.path.join(tmp, "t.txt")
    with open(textfile, "w", encoding="utf-8") as f:
        f.write("\n".join(" ".join(l) for l in lines) + "\n")

    def per_word(model):
        out = subprocess.run([a.harken, "lm", "eval", "--per-word", model, textfile], check=True, capture_output=True, text=True).stdout
        return [[float(x) for x in l.split()] for l in out.splitlines()]

    ours, ours_q = per_word(full), per_word(quant)
    max_diff, n = 0.0, 0
    worst = None
    total_k = total_h = total_q = 0.0
    for words, h, q in zip(lines, ours, ours_q):
        ks = [s[0] for s in k.full_scores(" ".join(words), bos=True, eos=True)]
        assert len(ks) == len(h) == len(q), (words, len(ks), len(h))
        for i, (x, y) in enumerate(zip(ks, h)):
            d = abs(x - y)
            n += 1
            if d > max_diff:
                max_diff, worst = d, (words, i, x, y)
        total_k += sum(ks)
        total_h += sum(h)
        total_q += sum(q)
    tokens = sum(len(w) + 1 for w in lines)
    ppl = lambda s: 10 ** (-s / tokens)
    print(f"tokens {n} in {len(lines)} sentences")
    print(f"per-token log10: max |harken - kenlm| = {max_diff:.2e}" + (f" (worst: {worst})" if max_diff > 1e-4 else ""))
    print(f"perplexity: kenlm {ppl(total_k):.4f}, harken f32 {ppl(total_h):.4f}, harken 8-bit {ppl(total_q):.4f} "
          f"({(ppl(total_q) / ppl(total_k) - 1) * 100:+.3f}% vs kenlm)")
    ok = max_diff <= 1e-4 and abs(ppl(total_q) / ppl(total_k) - 1) <= 0.01
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
