#!/usr/bin/env python3
"""Decode the same CTC posteriors with pyctcdecode (kenlm module) and compare with Harken.

Reads the posterior cache of `harken-train eval` (index.json + NNNN.f32), the eval manifest,
and Harken's own results for the same configuration (ctc-<set>.jsonl), then prints time and WER
of both. Same LM (the shared trigram ARPA), same alpha/beta, same beam width, same token cut-off.
Times cover decoding only: LM loading and the encoder are outside both.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
from pyctcdecode import build_ctcdecoder


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--set", default="dev")
    ap.add_argument("--config", default="lm-full")
    ap.add_argument("--alpha", type=float, required=True)
    ap.add_argument("--beta", type=float, required=True)
    ap.add_argument("--beam", type=int, default=32)
    ap.add_argument("--harken-train", required=True, help="harken-train binary (re-times Harken here)")
    ap.add_argument("--package", required=True)
    a = ap.parse_args()
    sys.path.insert(0, a.shared)
    import wer_reference as W

    # KenLM refuses the shared file (a comment line before \data\): use Harken's ARPA export of
    # the same model, which bench/ctc/wer.sh writes beside the binary.
    arpa = os.path.join(a.work, "lm", "full.arpa")
    unigrams, on = [], False
    with open(arpa, encoding="latin-1") as f:
        for line in f:
            if line.startswith("\\1-grams:"):
                on = True
            elif line.startswith("\\2-grams:"):
                break
            elif on and line.strip():
                w = line.split("\t")[1].strip()
                if w not in ("<s>", "</s>", "<unk>"):
                    unigrams.append(w)
    cache = os.path.join(a.work, f"post-{a.set}")
    idx = json.load(open(os.path.join(cache, "index.json")))
    labels = list(idx["labels"]) + [""]
    t0 = time.time()
    dec = build_ctcdecoder(labels, kenlm_model_path=arpa, unigrams=unigrams, alpha=a.alpha, beta=a.beta)
    load_s = time.time() - t0
    refs = [json.loads(l)["text"] for l in open(os.path.join(a.work, f"{a.set}.jsonl"))]
    mats = []
    for i in range(len(idx["audio"])):
        x = np.fromfile(os.path.join(cache, f"{i:04}.f32"), dtype="<f4").reshape(-1, idx["classes"])
        mats.append(x)
    hyps, t = [], 0.0
    for x in mats:
        s = time.perf_counter()
        hyps.append(dec.decode(x, beam_width=a.beam, beam_prune_logp=-25.0, token_min_logp=-10.0))
        t += time.perf_counter() - s
    # Harken on the same cached posteriors, timed in this run (same machine state).
    lm_dir = os.path.join(a.work, "lm")
    cfg = (f"{a.config}=beam:{a.beam},lm:{lm_dir}/full.bin,trie:{lm_dir}/vocab.trie,"
           f"alpha:{a.alpha},beta:{a.beta}")
    out = os.path.join(a.work, f"retime-{a.set}.jsonl")
    import subprocess
    subprocess.run([a.harken_train, "eval", "--package", a.package, "--manifest",
                    os.path.join(a.work, f"{a.set}.jsonl"), "--cache", cache, "--config", cfg,
                    "--out", out], check=True)
    ours = [json.loads(l) for l in open(out)]
    ours_t = sum(o["decode_ms"] for o in ours) / 1e3

    from wer_common import corpus_wer

    def wer(pairs):
        return corpus_wer(W, pairs)[0]

    frames = sum(x.shape[0] for x in mats)
    print(f"set {a.set}: {len(mats)} utterances, {frames * 0.02:.0f} s of audio, beam {a.beam}, alpha {a.alpha}, beta {a.beta}")
    print(f"| decoder | decode time | WER | agreement with the other |")
    print(f"|---|---|---|---|")
    same = sum(W.normalise(h) == W.normalise(o["hyp"]) for h, o in zip(hyps, ours))
    print(f"| Harken ({a.config}) | {ours_t:.2f} s | {wer(zip(refs, [o['hyp'] for o in ours])):.2f}% | {same}/{len(mats)} identical |")
    print(f"| pyctcdecode 0.5 + kenlm | {t:.2f} s | {wer(zip(refs, hyps)):.2f}% | (LM load {load_s:.1f} s) |")
    print(f"time ratio pyctcdecode / Harken: {t / max(ours_t, 1e-9):.1f}x")


if __name__ == "__main__":
    main()
