#!/usr/bin/env python3
"""WER of each audio format people upload, against the WAV it was made from.

Converts the first N transcribed clips under 30 s of ../shared/eval/real (recorded speech) with ffmpeg into what phones
and browsers produce — M4A/AAC 64 kbit/s (a voice memo), Ogg Opus 24 kbit/s (a voice message),
WebM Opus 32 kbit/s (a browser recording), MP3 64 kbit/s — transcribes every version with the
same Harken binary and model, and prints corpus WER per format (normalised by
../shared/wer_reference.py) plus how many clips' transcripts differ from the WAV's.

    bench/formats_wer.py [--harken target/release/harken] [--model base] [--clips 30]
"""
import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
sys.path.insert(0, os.path.join(HERE, "ctc"))
from wer_common import corpus_wer  # noqa: E402

FORMATS = {
    "wav": None,
    "m4a": ["-c:a", "aac", "-b:a", "64k", "-ar", "44100"],
    "opus": ["-c:a", "libopus", "-b:a", "24k", "-ar", "48000"],
    "webm": ["-c:a", "libopus", "-b:a", "32k", "-ar", "48000"],
    "mp3": ["-c:a", "libmp3lame", "-b:a", "64k", "-ar", "44100"],
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--harken", default=os.path.join(ROOT, "target/release/harken"))
    ap.add_argument("--model", default="base")
    ap.add_argument("--clips", type=int, default=30)
    args = ap.parse_args()
    spec = importlib.util.spec_from_file_location("W", os.path.join(SHARED, "wer_reference.py"))
    W = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(W)
    eval_dir = os.path.join(SHARED, "eval/real")
    # Clips with a reference transcript and under 30 s (one window): the decoder is what varies.
    rows = [json.loads(l) for l in open(os.path.join(eval_dir, "manifest.jsonl"))]
    rows = [r for r in rows if r["text"].strip() and r["seconds"] <= 30][: args.clips]
    seconds = sum(r["seconds"] for r in rows)
    print(f"{len(rows)} clips of eval/real, {seconds:.0f} s; model {args.model}; {args.harken}")
    with tempfile.TemporaryDirectory() as tmp:
        hyps = {}
        for fmt, codec in FORMATS.items():
            files = []
            for i, r in enumerate(rows):
                src = os.path.join(eval_dir, r["audio"])
                if codec is None:
                    files.append(src)
                    continue
                dst = os.path.join(tmp, f"{i:03d}.{fmt}")
                subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", src, *codec, dst],
                               check=True)
                files.append(dst)
            out = os.path.join(tmp, f"out-{fmt}")
            subprocess.run([args.harken, "transcribe", "--model", args.model, "--language", "en",
                            "-f", "json", "-o", out, *files], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            hyps[fmt] = []
            for f in files:
                name = os.path.splitext(os.path.basename(f))[0]
                with open(os.path.join(out, name + ".json")) as fh:
                    hyps[fmt].append(json.load(fh)["text"])
        print(f"{'format':<6} {'WER %':>7} {'words':>6} {'clips differing from WAV':>25}")
        for fmt in FORMATS:
            wer, n = corpus_wer(W, [(r["text"], h) for r, h in zip(rows, hyps[fmt])])
            diff = sum(W.normalise(a) != W.normalise(b) for a, b in zip(hyps["wav"], hyps[fmt]))
            print(f"{fmt:<6} {wer:7.2f} {n:6d} {diff:25d}")


if __name__ == "__main__":
    main()
