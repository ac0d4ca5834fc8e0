#!/usr/bin/env python3
"""Voice activity detection: accuracy cost, time saved, and agreement with the Python packages.

1. WER of `harken transcribe` with and without `--vad` on ../shared/eval/dev and eval/real
   (Whisper, language en; corpus WER by ../shared/wer_reference.py). Target: VAD costs at most
   0.3 points.
2. Time saved: wall time of the 3-min dialogue (bench/speed.sh's) and, with --long, the one-hour
   file (bench/long-file.sh's), with and without --vad, plus the share of audio VAD kept.
3. Frame agreement: Harken's per-chunk probabilities (`harken vad --probs`) against the
   silero-vad package's ONNX model run as the package runs it (onnxruntime), and against
   faster-whisper's bundled Silero model, on every eval/real clip: share of 32-ms chunks with
   the same speech decision at 0.5, largest probability difference.

Run with the bench venv (bench/setup-peer.sh: faster-whisper, onnxruntime):

    ~/.cache/harken/bench-venv/bin/python bench/vad.py [--model base] [--skip-wer] [--long]
"""
import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
CACHE = os.environ.get("HARKEN_CACHE_DIR", os.path.expanduser("~/.cache/harken"))
sys.path.insert(0, os.path.join(HERE, "ctc"))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from wer_common import corpus_wer  # noqa: E402


def load_wer():
    spec = importlib.util.spec_from_file_location("W", os.path.join(SHARED, "wer_reference.py"))
    W = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(W)
    return W


def transcribe(harken, model, files, extra, tmp):
    out = tempfile.mkdtemp(dir=tmp)
    t = time.perf_counter()
    subprocess.run([harken, "transcribe", "--model", model, "--language", "en", "-f", "json", "-o", out,
                    *extra, *files], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    texts = []
    for f in files:
        with open(os.path.join(out, os.path.splitext(os.path.basename(f))[0] + ".json")) as fh:
            texts.append(json.load(fh)["text"])
    return texts, wall


def wer_section(args, W, tmp):
    print("\n## WER with and without --vad (faster-whisper's VadOptions defaults)")
    print(f"{'set':<6} {'clips':>5} {'words':>6} {'WER %':>7} {'WER % --vad':>12} {'delta':>7}")
    for name in ("dev", "real"):
        d = os.path.join(SHARED, "eval", name)
        rows = [json.loads(l) for l in open(os.path.join(d, "manifest.jsonl"))]
        rows = [r for r in rows if r["text"].strip()]
        files = [os.path.join(d, r["audio"]) for r in rows]
        plain, _ = transcribe(args.harken, args.model, files, [], tmp)
        vad, _ = transcribe(args.harken, args.model, files, ["--vad"], tmp)
        w0, n = corpus_wer(W, [(r["text"], h) for r, h in zip(rows, plain)])
        w1, _ = corpus_wer(W, [(r["text"], h) for r, h in zip(rows, vad)])
        print(f"{name:<6} {len(rows):5d} {n:6d} {w0:7.2f} {w1:12.2f} {w1 - w0:+7.2f}")


def speech_share(harken, path):
    out = subprocess.run([harken, "vad", path], check=True, capture_output=True, text=True).stdout
    d = json.loads(out)
    return d["speech"] / d["duration"]


def time_section(args, tmp):
    print("\n## Time saved (wall seconds, min of runs)")
    files = [os.path.join(CACHE, "bench", "dialogue-3min.wav")]
    if args.long:
        files.append(os.path.join(CACHE, "bench", "one-hour.wav"))
    print(f"{'file':<20} {'speech kept':>11} {'plain s':>8} {'--vad s':>8} {'saved':>6}")
    for f in files:
        if not os.path.exists(f):
            print(f"{os.path.basename(f):<20} missing (bench/speed.sh or bench/long-file.sh makes it)")
            continue
        runs = 1 if "hour" in f else args.runs
        plain = min(transcribe(args.harken, args.model, [f], [], tmp)[1] for _ in range(runs))
        vad = min(transcribe(args.harken, args.model, [f], ["--vad"], tmp)[1] for _ in range(runs))
        share = speech_share(args.harken, f)
        print(f"{os.path.basename(f):<20} {share:10.1%} {plain:8.1f} {vad:8.1f} {1 - vad / plain:6.1%}")


def agreement_section(args):
    from gen_vad_fixture import package_probs  # the package's calling convention
    from faster_whisper.vad import get_vad_model
    from faster_whisper.audio import decode_audio

    print("\n## Frame agreement on eval/real (32-ms chunks, decision at 0.5)")
    d = os.path.join(SHARED, "eval", "real")
    rows = [json.loads(l) for l in open(os.path.join(d, "manifest.jsonl"))]
    files = [os.path.join(d, r["audio"]) for r in rows]
    out = subprocess.run([args.harken, "vad", "--probs", *files], check=True, capture_output=True, text=True)
    ours = [np.array(json.loads(l)["probs"], np.float32) for l in out.stdout.splitlines()]
    fw_model = get_vad_model()
    stats = {"silero-vad package": [0, 0, 0.0], "faster-whisper": [0, 0, 0.0]}
    for f, h in zip(files, ours):
        # The same 16 kHz samples Harken used: decode with Harken's resampler is not available
        # to Python, so both references get faster-whisper's (PyAV) decode; this adds resampler
        # differences to the comparison, which the fixture test (identical samples) excludes.
        audio = decode_audio(f, sampling_rate=16000)
        refs = {
            "silero-vad package": package_probs(audio),
            "faster-whisper": fw_model(np.pad(audio, (0, 512 - audio.shape[0] % 512))).reshape(-1),
        }
        for name, r in refs.items():
            n = min(len(r), len(h))
            s = stats[name]
            s[0] += int(((r[:n] >= 0.5) == (h[:n] >= 0.5)).sum())
            s[1] += n
            s[2] = max(s[2], float(np.abs(r[:n] - h[:n]).max()) if n else 0.0)
    print(f"{'reference':<20} {'chunks':>7} {'same decision':>14} {'max |diff|':>10}")
    for name, (same, n, worst) in stats.items():
        print(f"{name:<20} {n:7d} {same / n:14.2%} {worst:10.4f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--harken", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release/harken"))
    ap.add_argument("--model", default="base")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--skip-wer", action="store_true")
    ap.add_argument("--skip-time", action="store_true")
    ap.add_argument("--long", action="store_true", help="also the one-hour file")
    args = ap.parse_args()
    if not os.path.isdir(os.path.join(SHARED, "eval")):
        sys.exit(f"vad bench: {SHARED}/eval is missing (../shared beside the repo)")
    print(f"harken {args.harken}; model {args.model}")
    with tempfile.TemporaryDirectory() as tmp:
        agreement_section(args)
        if not args.skip_wer:
            wer_section(args, load_wer(), tmp)
        if not args.skip_time:
            time_section(args, tmp)


if __name__ == "__main__":
    main()
