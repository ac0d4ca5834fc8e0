#!/usr/bin/env python3
"""The peer of `harken batch`: faster-whisper over the same manifest, the same concurrency
(`--jobs` transcriptions at once, `--threads` compute threads each), one JSON line of results.

    batch_peer.py --manifest M --model-dir D --jobs 2 --threads 1 --language en --out FILE
"""
import argparse
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

from faster_whisper import WhisperModel

ap = argparse.ArgumentParser()
ap.add_argument("--manifest", required=True)
ap.add_argument("--model-dir", required=True)
ap.add_argument("--jobs", type=int, default=2)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--language", default="en")
ap.add_argument("--compute", default="int8")
ap.add_argument("--limit", type=int, default=0)
ap.add_argument("--out", required=True)
a = ap.parse_args()

base = os.path.dirname(os.path.abspath(a.manifest))
files = []
with open(a.manifest) as f:
    for line in f:
        if line.strip():
            files.append(os.path.join(base, json.loads(line)["audio"]))
if a.limit:
    files = files[: a.limit]

model = WhisperModel(a.model_dir, device="cpu", compute_type=a.compute,
                     cpu_threads=a.threads, num_workers=a.jobs)


def one(path):
    segments, info = model.transcribe(path, language=a.language, beam_size=5)
    text = " ".join(s.text.strip() for s in segments).strip()
    return {"audio": path, "text": text, "duration": info.duration}


start = time.perf_counter()
with ThreadPoolExecutor(a.jobs) as pool:
    results = list(pool.map(one, files))
wall = time.perf_counter() - start
with open(a.out, "w") as f:
    for r in results:
        f.write(json.dumps(r) + "\n")
print(json.dumps({"files": len(results), "wall_s": wall,
                  "audio_s": sum(r["duration"] for r in results)}))
