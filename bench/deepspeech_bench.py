#!/usr/bin/env python3
"""The measurements of bench/deepspeech.sh: each run is a fresh process under /usr/bin/time,
so load, peak RSS and transcription time are measured the same way for both engines."""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

CLIENT = r'''
import ctypes, sys, time, wave
lib = ctypes.CDLL(sys.argv[1])
lib.DS_CreateModel.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
lib.DS_SpeechToText.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_short), ctypes.c_uint]
lib.DS_SpeechToText.restype = ctypes.c_void_p
with wave.open(sys.argv[3], "rb") as w:
    data = w.readframes(w.getnframes())
buf = (ctypes.c_short * (len(data) // 2)).from_buffer_copy(data)
m = ctypes.c_void_p()
t0 = time.perf_counter()
if lib.DS_CreateModel(sys.argv[2].encode(), ctypes.byref(m)) != 0:
    sys.exit("DS_CreateModel failed")
if len(sys.argv) > 4:
    lib.DS_EnableExternalScorer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    if lib.DS_EnableExternalScorer(m, sys.argv[4].encode()) != 0:
        sys.exit("DS_EnableExternalScorer failed")
t1 = time.perf_counter()
p = lib.DS_SpeechToText(m, buf, len(buf))
t2 = time.perf_counter()
text = ctypes.cast(p, ctypes.c_char_p).value.decode()
print(f"LOAD {t1 - t0:.6f} STT {t2 - t1:.6f}")
print("TEXT " + text)
'''


def timed(cmd, env=None):
    with tempfile.NamedTemporaryFile("r") as t:
        r = subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", t.name] + cmd,
                           capture_output=True, text=True, env=env, check=False)
        if r.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
        wall, rss = t.read().split()[-2:]
    return r, float(wall), int(rss) / 1024


def client_run(a, cores):
    cmd = ["taskset", "-c", cores, sys.executable, "-c", CLIENT, a.lib, a.model, a.audio]
    cmd += [a.scorer] if a.scorer else []
    r, wall, rss = timed(cmd)
    load, stt = map(float, re.search(r"LOAD (\S+) STT (\S+)", r.stdout).groups())
    text = r.stdout.split("TEXT ", 1)[1].rstrip("\n")
    return {"load": load, "stt": stt, "wall": wall, "rss": rss, "text": text}


def harken_run(a, cores, threads):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads), HARKEN_LOG="info", NO_COLOR="1")
    cmd = ["taskset", "-c", cores, a.harken, "transcribe", "--model", a.model, a.audio]
    cmd += ["--scorer", a.scorer] if a.scorer else []
    r, wall, rss = timed(cmd, env)
    load = float(re.search(r"DeepSpeech model loaded.*?seconds=(\S+)", r.stderr).group(1))
    return {"load": load, "stt": wall - load, "wall": wall, "rss": rss,
            "text": r.stdout.rstrip("\n")}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--lib", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--harken", required=True)
    p.add_argument("--audio", required=True)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--scorer", help="a .scorer package for both (load time includes it)")
    a = p.parse_args()
    import wave
    with wave.open(a.audio, "rb") as w:
        audio_s = w.getnframes() / w.getframerate()
    results = {}
    for label, cores, threads in (("1 core", "0", 1), ("2 cores", "0,1", 2)):
        c, h = [], []
        for _ in range(a.runs):  # interleaved, so both see the same machine state
            c.append(client_run(a, cores))
            h.append(harken_run(a, cores, threads))
        same = all(x["text"] == c[0]["text"] for x in c + h)
        row = {}
        for key in ("stt", "load", "rss", "wall"):
            cv, hv = [x[key] for x in c], [x[key] for x in h]
            row[key] = {"client_min": min(cv), "client_median": statistics.median(cv),
                        "harken_min": min(hv), "harken_median": statistics.median(hv),
                        "ratio_min": min(hv) / min(cv),
                        "ratio_median": statistics.median(hv) / statistics.median(cv)}
        row["same_text"] = same
        results[label] = row
    print(f"audio {audio_s:.1f} s, model {a.model}, scorer {a.scorer or '-'}, {a.runs} runs each; "
          "ratio = Harken / client")
    print(f"{'':8} {'':6} {'client min/med':>18} {'harken min/med':>18} {'ratio min/med':>16}")
    for label, row in results.items():
        for key, unit in (("stt", "s"), ("load", "s"), ("rss", "MiB")):
            v = row[key]
            print(f"{label:8} {key:6} {v['client_min']:8.3f}/{v['client_median']:<8.3f} "
                  f"{v['harken_min']:8.3f}/{v['harken_median']:<8.3f} "
                  f"{v['ratio_min']:7.3f}/{v['ratio_median']:<7.3f} {unit}")
        print(f"{label:8} RTF    client {row['stt']['client_min'] / audio_s:.3f}  "
              f"harken {row['stt']['harken_min'] / audio_s:.3f}  same text: {row['same_text']}")
    print(json.dumps({"audio_s": audio_s, "scorer": a.scorer, "results": results}))


if __name__ == "__main__":
    main()
