#!/usr/bin/env python3
"""Print the CTC/Whisper WER table from the outputs of bench/ctc/wer.sh.

WER uses the team's reference normalisation (../shared/wer_reference.py), total edits over total
reference words per set.
"""
import argparse
import collections
import json
import os
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    sys.path.insert(0, a.shared)
    import wer_reference as W

    from wer_common import corpus_wer

    def wer(pairs):
        return corpus_wer(W, pairs)

    rows = collections.OrderedDict()
    times = collections.defaultdict(float)
    for s in ("dev", "real"):
        path = os.path.join(a.work, f"ctc-{s}.jsonl")
        for line in open(path):
            d = json.loads(line)
            rows.setdefault(d["config"], {}).setdefault(s, []).append((d["ref"], d["hyp"]))
            times[(d["config"], s)] += d["decode_ms"] / 1e3
        for mode in ("whisper", "whisper-lm"):
            out = os.path.join(a.work, f"{mode}-{s}")
            for line in open(os.path.join(a.work, f"{s}.jsonl")):
                m = json.loads(line)
                stem = os.path.splitext(os.path.basename(m["audio"]))[0]
                f = os.path.join(out, stem + ".json")
                hyp = json.load(open(f))["text"] if os.path.exists(f) else ""
                rows.setdefault(mode, {}).setdefault(s, []).append((m["text"], hyp))
    lm_dir = os.path.join(a.work, "lm")
    size = lambda n: os.path.getsize(os.path.join(lm_dir, n)) if os.path.exists(os.path.join(lm_dir, n)) else None
    lm_of = {"lm-full": "full.bin", "lm-full-no-trie": "full.bin", "whisper-lm": "full.bin",
             "lm-1/4": "q4.bin", "lm-1/16": "q16.bin", "lm-1/64": "q64.bin"}
    audio_s = {}
    for s in ("dev", "real"):
        idx = os.path.join(a.work, f"post-{s}", "index.json")
        if os.path.exists(idx):
            j = json.load(open(idx))
            frames = 0
            for i in range(len(j["audio"])):
                frames += os.path.getsize(os.path.join(a.work, f"post-{s}", f"{i:04}.f32")) // 4 // j["classes"]
            audio_s[s] = frames * 0.02
    print("| system | LM bytes | dev WER | real WER | decode s per audio s (dev) |")
    print("|---|---|---|---|---|")
    for name, sets in rows.items():
        b = size(lm_of[name]) if name in lm_of else None
        dev, nd = wer(sets.get("dev", []))
        real, nr = wer(sets.get("real", []))
        t = times.get((name, "dev"))
        rt = f"{t / audio_s['dev']:.4f}" if t is not None and audio_s.get("dev") else "–"
        print(f"| {name} | {b / 1e6:.1f} MB |" if b else f"| {name} | – |", f"{dev:.2f}% | {real:.2f}% | {rt} |")
    print(f"\n(dev {nd} words, real {nr} words; decode time excludes the encoder, which is shared by all CTC rows)")


if __name__ == "__main__":
    main()
