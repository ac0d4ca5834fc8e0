#!/usr/bin/env python3
"""Render training audio for the CTC head from training sentences.

Each sentence is read by one of four text-to-speech engines installed from the registries
(espeak-ng with its accents and voice variants, flite's five voices, festival's kal and slt
voices, hibari's heart voice), resampled to 16 kHz and speed-perturbed. Sentences are then packed
into windows of at most 29 s with random pauses, because the Whisper encoder always sees a 30-s
window: packing turns one encoder pass into several utterances of training data. About a third
of the windows hold one short utterance and trailing padding, as at inference on short clips.
Each window then gets one channel: clean, telephone band (8 kHz, optionally mu-law), room reverb,
and additive white/pink/brown noise at 5-30 dB SNR.

Output: DIR/audio/wNNNNN.wav (16 kHz, 16-bit) and DIR/manifest.jsonl ({"audio","text","seconds"}).
Deterministic for a given --seed and input.
"""
import argparse
import json
import os
import random
import subprocess
import tempfile
import wave
from multiprocessing import Pool

import numpy as np

SR = 16000
ESPEAK = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd"]
ESPEAK_VARIANTS = ["", "+m1", "+m2", "+m3", "+m4", "+m5", "+m6", "+m7", "+f1", "+f2", "+f3", "+f4", "+f5"]
FLITE = ["kal", "kal16", "awb", "rms", "slt"]
FESTIVAL = ["kal_diphone", "cmu_us_slt_arctic_hts"]
_hibari = None


def sox(samples, rate_in, effects, rate_out=SR):
    """Run float32 samples through sox effects; returns float32 at rate_out."""
    cmd = ["sox", "-q", "-t", "f32", "-r", str(rate_in), "-c", "1", "-", "-t", "f32", "-r", str(rate_out),
           "-c", "1", "-"] + effects
    out = subprocess.run(cmd, input=samples.astype(np.float32).tobytes(), capture_output=True, check=True)
    return np.frombuffer(out.stdout, dtype=np.float32).copy()


def read_wav(path):
    with wave.open(path) as w:
        rate, n, width = w.getframerate(), w.getnframes(), w.getsampwidth()
        raw = w.readframes(n)
        ch = w.getnchannels()
    x = np.frombuffer(raw, dtype=np.int16).astype(np.float32) / 32768.0
    if ch > 1:
        x = x.reshape(-1, ch).mean(axis=1)
    assert width == 2
    return x, rate


def speak(text, rng, tmp):
    """Synthesize text with a random engine/voice; returns (samples at 16 kHz, voice name)."""
    global _hibari
    r = rng.random()
    out = os.path.join(tmp, "u.wav")
    if r < 0.30:
        if _hibari is None:
            from hibari import Hibari
            _hibari = Hibari(threads=1)
        audio = _hibari(text, speed=rng.uniform(0.85, 1.2), seed=rng.randrange(1 << 30))
        return sox(np.asarray(audio, dtype=np.float32), 24000, []), "hibari:heart"
    if r < 0.60:
        voice = rng.choice(ESPEAK) + rng.choice(ESPEAK_VARIANTS)
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(rng.randint(130, 200)), "-p",
                        str(rng.randint(25, 75)), "-w", out, text], check=True, capture_output=True)
        name = "espeak-ng:" + voice
    elif r < 0.85:
        voice = rng.choice(FLITE)
        subprocess.run(["flite", "-voice", voice, "-t", text, "-o", out], check=True, capture_output=True)
        name = "flite:" + voice
    else:
        voice = rng.choice(FESTIVAL)
        with open(os.path.join(tmp, "u.txt"), "w") as f:
            f.write(text)
        subprocess.run(["text2wave", "-eval", f"(voice_{voice})", os.path.join(tmp, "u.txt"), "-o", out],
                       check=True, capture_output=True)
        name = "festival:" + voice
    x, rate = read_wav(out)
    return sox(x, rate, []), name


def render(job):
    idx, spoken, label, seed = job
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            x, voice = speak(spoken, rng, tmp)
        except (subprocess.CalledProcessError, RuntimeError, ValueError, OSError, EOFError) as e:
            return idx, None, label, str(e)[:200]
    speed = rng.uniform(0.9, 1.1)
    if abs(speed - 1) > 0.01:
        x = sox(x, SR, ["speed", f"{speed:.3f}", "rate", str(SR)])
    # TTS engines pad differently; trim silence at both ends so packing controls the pauses.
    nz = np.nonzero(np.abs(x) > 0.01)[0]
    if len(nz):
        x = x[max(0, nz[0] - 800) : nz[-1] + 1600]
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak > 0:
        x = x / peak * 0.7
    return idx, x.astype(np.float32), label, voice


def colored_noise(n, kind, rng):
    w = rng.standard_normal(n).astype(np.float32)
    if kind == "white":
        return w
    spec = np.fft.rfft(w)
    f = np.arange(len(spec), dtype=np.float32)
    f[0] = 1
    spec = spec / (np.sqrt(f) if kind == "pink" else f)
    return np.fft.irfft(spec, n).astype(np.float32)


def channel(x, rng, nprng):
    """One recording/transmission condition for a whole window."""
    tags = []
    r = rng.random()
    if r < 0.35:
        eff = ["rate", "8000"]
        if rng.random() < 0.5:
            eff = ["sinc", "300-3400", "rate", "8000"]
            tags.append("telephone")
        else:
            tags.append("8khz")
        y = sox(x, SR, eff, rate_out=8000)
        x = sox(y, 8000, ["rate", str(SR)])
    if rng.random() < 0.25:
        x = sox(x, SR, ["reverb", str(rng.randint(20, 70)), "50", str(rng.randint(30, 100))])
        tags.append("reverb")
    if rng.random() < 0.5:
        kind = rng.choice(["white", "pink", "brown"])
        snr = rng.uniform(5, 30)
        n = colored_noise(len(x), kind, nprng)
        ps = float(np.mean(x**2)) + 1e-9
        pn = float(np.mean(n**2)) + 1e-12
        x = x + n * np.sqrt(ps / pn / 10 ** (snr / 10))
        tags.append(f"{kind}{snr:.0f}dB")
    x = x * rng.uniform(0.2, 1.0) / max(1e-6, float(np.max(np.abs(x))))
    return x.astype(np.float32), tags


def write_wav(path, x):
    pcm = (np.clip(x, -1, 1) * 32767).astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(pcm.tobytes())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--text", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--sentences", type=int, default=4000)
    ap.add_argument("--skip", type=int, default=0, help="start at this sentence (for held-out sets)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()

    lines = open(args.text, encoding="utf-8").read().splitlines()[args.skip : args.skip + args.sentences]
    jobs = [(i, *l.split("\t"), args.seed * 1_000_003 + i) for i, l in enumerate(lines)]
    os.makedirs(os.path.join(args.out, "audio"), exist_ok=True)
    with Pool(args.jobs) as pool:
        utts = sorted(pool.imap_unordered(render, jobs, chunksize=8))
    failed = [u for u in utts if u[1] is None]
    utts = [u for u in utts if u[1] is not None]
    rng, nprng = random.Random(args.seed), np.random.default_rng(args.seed)
    manifest, total, w, i = [], 0.0, 0, 0
    limit = 29 * SR
    while i < len(utts):
        single = rng.random() < 0.33
        parts, texts, voices = [np.zeros(int(rng.uniform(0.05, 1.0) * SR), np.float32)], [], []
        length = len(parts[0])
        while i < len(utts):
            x = utts[i][1]
            if texts and (single or length + len(x) > limit):
                break
            if not texts and length + len(x) > limit:
                i += 1  # longer than a window on its own
                break
            parts.append(x)
            texts.append(utts[i][2])
            voices.append(utts[i][3])
            gap = np.zeros(int(rng.uniform(0.1, 1.2) * SR), np.float32)
            parts.append(gap)
            length += len(x) + len(gap)
            i += 1
        if not texts:
            continue
        x, tags = channel(np.concatenate(parts)[:limit], rng, nprng)
        name = f"audio/w{w:05d}.wav"
        write_wav(os.path.join(args.out, name), x)
        secs = len(x) / SR
        manifest.append({"audio": name, "text": " ".join(texts), "seconds": round(secs, 3),
                         "voices": voices, "channel": tags})
        total += secs
        w += 1
    with open(os.path.join(args.out, "manifest.jsonl"), "w") as f:
        for m in manifest:
            f.write(json.dumps(m) + "\n")
    print(f"{len(utts)} utterances in {w} windows, {total / 3600:.2f} h; {len(failed)} failed")
    for f in failed[:5]:
        print("failed:", f[2], f[3])


if __name__ == "__main__":
    main()
