#!/usr/bin/env python3
"""Invented text: words a recogniser writes where nobody speaks, per hour of non-speech.

Renders a test set with sox into ~/.cache/harken/bench/hallucination/ (16 kHz mono):
digital silence, white, pink and brown noise, a steady tone, a two-tone telephone signal,
music (plucked chords), read speech from ../shared/eval/real with 20-s pauses of room noise,
and read speech that stops 13 s before the end of its last 30-s window. Each engine
configuration transcribes every file; invented words are every word of a file without speech,
and the insertions (alignment against the reference) of a file with speech. The rate is
invented words per hour of non-speech audio in the set. WER on the speech files is printed too,
so that a guard that deletes real words shows.

    ~/.cache/harken/bench-venv/bin/python bench/hallucination.py [--model base] [--fw]
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
CACHE = os.environ.get("HARKEN_CACHE_DIR", os.path.expanduser("~/.cache/harken"))
OUT = os.path.join(CACHE, "bench", "hallucination")
SOX = ["sox", "-R", "-D", "-q"]
PCM = ["-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer"]


def sox(*args):
    subprocess.run([*SOX, *map(str, args)], check=True)


def noise_bed(path, seconds, vol=0.003):
    sox("-n", *PCM, path, "synth", seconds, "pinknoise", "vol", vol)


def to16k(src, dst):
    sox(src, *PCM, dst)


def render(W):
    """(name, path, reference text, non-speech seconds) for every file of the set."""
    os.makedirs(OUT, exist_ok=True)
    files = []

    def synth(name, seconds, *effect):
        p = os.path.join(OUT, name + ".wav")
        if not os.path.exists(p):
            sox("-n", *PCM, p, "synth", seconds, *effect)
        files.append((name, p, "", float(seconds)))

    p = os.path.join(OUT, "silence.wav")
    if not os.path.exists(p):
        sox("-n", *PCM, p, "trim", 0, 60)
    files.append(("silence", p, "", 60.0))
    synth("white-noise", 60, "whitenoise", "vol", 0.05)
    synth("pink-noise", 60, "pinknoise", "vol", 0.1)
    synth("brown-noise", 60, "brownnoise", "vol", 0.2)
    synth("tone-440", 30, "sine", 440, "vol", 0.3)
    synth("dial-tone", 30, "sine", 350, "sine", 440, "remix", "-", "vol", 0.3)
    music = os.path.join(OUT, "music.wav")
    if not os.path.exists(music):
        with tempfile.TemporaryDirectory() as tmp:
            chords = [("C3", "E3", "G3"), ("F3", "A3", "C4"), ("G3", "B3", "D4"), ("A3", "C4", "E4")]
            parts = []
            for i, c in enumerate(chords):
                part = os.path.join(tmp, f"{i}.wav")
                sox("-n", *PCM, part, "synth", 1.5, *[x for n in c for x in ("pluck", n)], "remix", "-",
                    "vol", 0.4)
                parts.append(part)
            bar = os.path.join(tmp, "bar.wav")
            sox(*parts, bar)
            sox(bar, music, "repeat", 9)
    files.append(("music", music, "", 60.0))

    real = os.path.join(SHARED, "eval", "real")
    rows = [json.loads(l) for l in open(os.path.join(real, "manifest.jsonl"))]
    by = {os.path.basename(r["audio"]): r for r in rows}
    read = [by[n] for n in ("pocketsphinx_librivox_0870.wav", "pocketsphinx_librivox_0890.wav",
                            "pocketsphinx_librivox_0930.wav") if n in by]
    def speech(path, clips, gap_s=0.0, tail_s=0.0):
        """The clips at 16 kHz, with `gap_s` of room noise between them and `tail_s` after."""
        if os.path.exists(path):
            return
        with tempfile.TemporaryDirectory() as tmp:
            parts = []
            for i, r in enumerate(clips):
                s = os.path.join(tmp, f"s{i}.wav")
                to16k(os.path.join(real, r["audio"]), s)
                parts.append(s)
                pause = gap_s if i + 1 < len(clips) else tail_s
                if pause:
                    gap = os.path.join(tmp, f"g{i}.wav")
                    noise_bed(gap, pause)
                    parts.append(gap)
            sox(*parts, path)

    p = os.path.join(OUT, "speech-20s-pauses.wav")
    speech(p, read, gap_s=20)
    files.append(("speech-20s-pauses", p, " ".join(r["text"] for r in read), 20.0 * (len(read) - 1)))
    # Read speech that stops mid-window: about 47 s of speech, then 13 s of room noise.
    p = os.path.join(OUT, "speech-stops.wav")
    long_rows = [r for r in rows if r["text"].strip() and r.get("group") in ("pocketsphinx", "parselmouth", "codec2", None)]
    picked, total = [], 0.0
    for r in [*read, *sorted(long_rows, key=lambda r: -r["seconds"])]:
        if r in picked or total >= 45:
            continue
        picked.append(r)
        total += r["seconds"]
    speech(p, picked, tail_s=13)
    files.append(("speech-stops", p, " ".join(r["text"] for r in picked), 13.0))
    return files


def insertions(ref, hyp):
    """Words of `hyp` that align to nothing in `ref` (Levenshtein, insertions counted)."""
    n, m = len(ref), len(hyp)
    d = [[(0, 0)] * (m + 1) for _ in range(n + 1)]  # (cost, insertions)
    for j in range(1, m + 1):
        d[0][j] = (j, j)
    for i in range(1, n + 1):
        d[i][0] = (i, 0)
        for j in range(1, m + 1):
            sub = d[i - 1][j - 1]
            sub = (sub[0] + (ref[i - 1] != hyp[j - 1]), sub[1])
            dele = (d[i - 1][j][0] + 1, d[i - 1][j][1])
            ins = (d[i][j - 1][0] + 1, d[i][j - 1][1] + 1)
            d[i][j] = min(sub, dele, ins)
    return d[n][m][1]


def harken(args, files, extra, tmp):
    out = tempfile.mkdtemp(dir=tmp)
    subprocess.run([args.harken, "transcribe", "--model", args.model, "--language", "en", "-f", "json",
                    "-o", out, *extra, *[f[1] for f in files]], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return [json.load(open(os.path.join(out, f[0] + ".json")))["text"] for f in files]


def faster_whisper(args, files, vad):
    from faster_whisper import WhisperModel
    model = WhisperModel(os.path.join(CACHE, "models", "whisper-" + args.model), device="cpu",
                         compute_type="int8", cpu_threads=2)
    out = []
    for f in files:
        segs, _ = model.transcribe(f[1], language="en", beam_size=5, vad_filter=vad)
        out.append("".join(s.text for s in segs))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    ap.add_argument("--harken", default=os.path.join(target, "release/harken"))
    ap.add_argument("--model", default="base")
    ap.add_argument("--fw", action="store_true", help="also faster-whisper (int8), plain and vad_filter")
    ap.add_argument("--config", action="append", default=[],
                    help="extra harken configuration: NAME=FLAGS (space-separated)")
    args = ap.parse_args()
    if not os.path.isdir(os.path.join(SHARED, "eval")):
        sys.exit(f"hallucination bench: {SHARED}/eval is missing (../shared beside the repo)")
    spec = importlib.util.spec_from_file_location("W", os.path.join(SHARED, "wer_reference.py"))
    W = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(W)
    files = render(W)
    nonspeech_h = sum(f[3] for f in files) / 3600
    configs = {"harken": [], "harken --vad": ["--vad"]}
    for c in args.config:
        name, _, flags = c.partition("=")
        configs[name] = flags.split()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, flags in configs.items():
            results[name] = harken(args, files, flags, tmp)
    if args.fw:
        results["faster-whisper"] = faster_whisper(args, files, False)
        results["faster-whisper vad_filter"] = faster_whisper(args, files, True)
    print(f"model {args.model}; {len(files)} files, {nonspeech_h * 60:.1f} min of non-speech")
    names = list(results)
    print(f"{'file':<20}" + "".join(f"{n[:24]:>26}" for n in names))
    totals = {n: 0 for n in names}
    wer = {n: [0, 0] for n in names}
    for i, f in enumerate(files):
        ref = W.normalise(f[2])
        row = f"{f[0]:<20}"
        for n in names:
            hyp = W.normalise(results[n][i])
            inv = insertions(ref, hyp) if ref else len(hyp)
            totals[n] += inv
            if ref:
                wer[n][0] += W.edits(ref, hyp)
                wer[n][1] += len(ref)
            row += f"{inv:>26}"
        print(row)
    print(f"{'invented words/hour':<20}" + "".join(f"{totals[n] / nonspeech_h:>26.0f}" for n in names))
    print(f"{'WER % speech files':<20}" + "".join(f"{100 * wer[n][0] / max(1, wer[n][1]):>26.2f}" for n in names))
    if os.environ.get("HALLUCINATION_SHOW"):
        for n in names:
            for f, t in zip(files, results[n]):
                print(f"[{n}] {f[0]}: {t}")


if __name__ == "__main__":
    main()
