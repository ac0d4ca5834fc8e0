#!/usr/bin/env python3
"""Hot-word recall: synthesise sentences with rare names, transcribe with and without boosting.

Renders each sentence with two TTS voices (espeak-ng en-us and flite slt), then runs the CTC
package and Whisper base through `harken transcribe`, once plain and once with the sentence's
names as --hotwords (the other sentences' names are not passed, so boosting is per request as a
user would use it). Recall = boosted names found (normalised word match) / names spoken.
A false-alarm count checks that boosting does not spray names: every clip is also decoded with
the names of a *different* sentence boosted, and any of those names appearing is a false alarm.
"""
import argparse
import json
import os
import re
import subprocess
import sys

SENTENCES = [
    ("Please call Zubair Okonkwo before the meeting", ["zubair", "okonkwo"]),
    ("The package for Priyanka Raghunathan arrived today", ["priyanka", "raghunathan"]),
    ("Send the report to Siobhan Kowalczyk in accounting", ["siobhan", "kowalczyk"]),
    ("Our new manager is called Thandiwe Mbeki", ["thandiwe", "mbeki"]),
    ("I had lunch with Bartholomew Quagliarello yesterday", ["bartholomew", "quagliarello"]),
    ("The flight to Ouagadougou leaves at noon", ["ouagadougou"]),
    ("Ask Nguyen Thi Huong about the invoice", ["nguyen", "huong"]),
    ("The conference is held in Tiruchirappalli this year", ["tiruchirappalli"]),
    ("Doctor Eleftheria Papadopoulou will see you now", ["eleftheria", "papadopoulou"]),
    ("We hired Kwabena Asante as our designer", ["kwabena", "asante"]),
    ("The train stops at Llanfair before the coast", ["llanfair"]),
    ("Give the keys to Ingeborg Sandvik at the front desk", ["ingeborg", "sandvik"]),
    ("My cousin Anselm Wojciechowski plays the cello", ["anselm", "wojciechowski"]),
    ("The hotel in Szczecin was very quiet", ["szczecin"]),
    ("Remind Oluwaseun Adebayo about the deadline", ["oluwaseun", "adebayo"]),
    ("Professor Hieronymus Vanderbilt retired last spring", ["hieronymus", "vanderbilt"]),
]
VOICES = [("espeak-ng", "en-us"), ("flite", "slt")]


def words(text):
    return re.sub(r"[^a-z' ]", " ", text.lower()).split()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--harken", required=True)
    ap.add_argument("--ctc", required=True, help="CTC package")
    ap.add_argument("--whisper", required=True, help="Whisper model")
    ap.add_argument("--work", required=True)
    ap.add_argument("--weight", type=float, default=5.0, help="--hotword-weight")
    a = ap.parse_args()
    audio = os.path.join(a.work, "hotwords")
    os.makedirs(audio, exist_ok=True)
    clips = []
    for i, (text, names) in enumerate(SENTENCES):
        for engine, voice in VOICES:
            path = os.path.join(audio, f"{i:02}-{engine}-{voice}.wav")
            if not os.path.exists(path):
                if engine == "espeak-ng":
                    subprocess.run(["espeak-ng", "-v", voice, "-w", path, text], check=True)
                else:
                    subprocess.run(["flite", "-voice", voice, "-t", text, "-o", path], check=True)
            clips.append((path, i))

    def run(model, path, hot, extra):
        cmd = [a.harken, "transcribe", "--model", model, path] + extra
        if hot:
            cmd += ["--hotwords", ",".join(hot), "--hotword-weight", str(a.weight)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        return words(out.stdout)

    rows = []
    for label, model, extra in (("CTC + LM", a.ctc, []), ("Whisper base", a.whisper, ["--language", "en"])):
        found = {"plain": 0, "boosted": 0}
        false_alarms = total = 0
        for path, i in clips:
            names = SENTENCES[i][1]
            other = SENTENCES[(i + 1) % len(SENTENCES)][1]
            total += len(names)
            for mode, hot in (("plain", []), ("boosted", names)):
                hyp = run(model, path, hot, extra)
                found[mode] += sum(n in hyp for n in names)
            hyp = run(model, path, other, extra)
            false_alarms += sum(n in hyp for n in other)
        rows.append((label, found["plain"], found["boosted"], total, false_alarms))
    print(f"{len(clips)} clips ({len(SENTENCES)} sentences x {len(VOICES)} voices), {rows[0][3]} name mentions, hot-word weight {a.weight}")
    print("| system | recall plain | recall with --hotwords | false alarms (other sentence's names boosted) |")
    print("|---|---|---|---|")
    for label, p, b, t, fa in rows:
        print(f"| {label} | {p}/{t} ({100 * p / t:.0f}%) | {b}/{t} ({100 * b / t:.0f}%) | {fa}/{t} |")


if __name__ == "__main__":
    sys.exit(main())
