#!/usr/bin/env python3
"""WER of Harken (and optionally faster-whisper) on the synthetic German set from bench/german.sh.

    bench/german.sh                                       # make the set first (idempotent)
    ~/.cache/harken/bench-venv/bin/python bench/german_wer.py             # harken, de + auto
    ~/.cache/harken/bench-venv/bin/python bench/german_wer.py --engines harken,fw --limit 5

The set is ${HARKEN_CACHE_DIR:-~/.cache/harken}/eval-de/manifest.jsonl (25 espeak-ng utterances).
Each engine runs once per language in --languages (default `de,auto`):
  harken  ONE process over all files: `harken transcribe --model DIR --threads T --beam B
          --language de|auto --format json FILE...` (one JSON object per line per file:
          {"file", "text", "language", ...}); binary from --harken-bin, $HARKEN_BIN or
          ${CARGO_TARGET_DIR:-~/.cache/harken/target}/release/harken.
  fw      faster-whisper (bench venv; bench/setup-peer.sh), in-process, compute type --fw-compute
          (int8), beam B, VAD off, language "de" or None for auto.
With `auto`, the detected language of every file is tallied as well.

German normalisation (not ../shared/wer_reference.py, which is English-only): Unicode NFKC,
lowercase, every character that is neither a letter nor a digit nor whitespace becomes a space
(punctuation, hyphens, apostrophes), whitespace collapsed. Umlauts and ß are kept as they are
(no ae/oe/ue/ss folding). Numbers are NOT spelled out: the references spell them as words, so a
hypothesis with digits ("14 Uhr") counts them as errors; the table shows how many hypotheses
contain digits. Corpus WER = total word edits / total reference words.

Results: table on stdout, JSON (--json, default ${HARKEN_CACHE_DIR:-~/.cache/harken}/bench/
german-<time>.json) and per-file hypotheses in the .tsv beside it. Exit 2 on bad setup (no set,
no binary, no model), 1 if an engine failed on some file.
"""
import argparse
import json
import os
import re
import sys
import time
import unicodedata

sys.dont_write_bytecode = True  # no bench/__pycache__ from importing compare.py
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402
from compare import CACHE, FasterWhisper, Harken, default_harken_bin, die, log  # noqa: E402

compare.PROG = "german_wer"


def normalise_de(text: str) -> list[str]:
    t = unicodedata.normalize("NFKC", text).lower()
    t = re.sub(r"[^\w\s]|_", " ", t)
    return t.split()


def edits(ref: list[str], hyp: list[str]) -> int:
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def main() -> int:
    ap = argparse.ArgumentParser(description="German WER of Harken (and faster-whisper) on eval-de.",
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--set", default=os.path.join(CACHE, "eval-de", "manifest.jsonl"),
                    help="manifest of the German set (default: %(default)s)")
    ap.add_argument("--model", default=os.path.join(CACHE, "models", "whisper-base"),
                    help="multilingual CTranslate2 Whisper model directory (default: %(default)s)")
    ap.add_argument("--engines", default="harken", help="comma list of harken, fw (default: harken)")
    ap.add_argument("--languages", default="de,auto", help="comma list of de, auto (default: de,auto)")
    ap.add_argument("--harken-bin", default=default_harken_bin())
    ap.add_argument("--fw-compute", default="int8", help="faster-whisper compute type (default: int8)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--limit", type=int, default=0, help="only the first N utterances")
    ap.add_argument("--json", help="results file; the per-file TSV goes beside it")
    a = ap.parse_args()

    if not os.path.isfile(a.set):
        die(f"{a.set} is missing: run bench/german.sh first")
    base = os.path.dirname(os.path.abspath(a.set))
    rows = []
    with open(a.set, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                d = json.loads(line)
                d["path"] = os.path.join(base, d["audio"])
                rows.append(d)
    if a.limit:
        rows = rows[:a.limit]
    model = os.path.abspath(os.path.expanduser(a.model))
    if not os.path.isfile(os.path.join(model, "model.bin")):
        die(f"model directory {model} has no model.bin; install it with scripts/install-models.sh")
    if model.rstrip("/").endswith(".en"):
        log(f"german_wer: warning: {model} looks English-only; German needs a multilingual model")
    engines = [e.strip() for e in a.engines.split(",") if e.strip()]
    languages = [x.strip() for x in a.languages.split(",") if x.strip()]
    for e in engines:
        if e not in ("harken", "fw"):
            die(f"unknown engine {e!r} (harken, fw)")
    hb = os.path.abspath(os.path.expanduser(a.harken_bin))
    if "harken" in engines and not (os.path.isfile(hb) and os.access(hb, os.X_OK)):
        die(f"harken binary not found at {hb}: build it or set HARKEN_BIN / --harken-bin "
            "(`--engines fw` runs faster-whisper alone)")

    paths = [r["path"] for r in rows]
    refs = {r["path"]: normalise_de(r["text"]) for r in rows}
    n_ref = sum(len(v) for v in refs.values())
    results, hyps, failed = {}, {}, False
    for e in engines:
        fw = None
        if e == "fw":
            fw = FasterWhisper(a.fw_compute, model, a.threads, a.beam, "de")
            fw.load()
        for lang in languages:
            key = f"{e}:{lang}" if e == "harken" else f"fw-{a.fw_compute}:{lang}"
            got, errors = {}, []
            t0 = time.perf_counter()
            if e == "harken":
                found, _wall, _rss, err = Harken(hb, model, a.threads, a.beam, lang).transcribe_many(paths)
                got = {p: ((o.get("text") or "").strip(), o.get("language")) for p, o in found.items()}
                if err:
                    errors.append(err)
            else:
                fw.language = lang
                for p in paths:
                    try:
                        text, _dt, detected = fw.transcribe(p)
                        got[p] = (text, detected)
                    except Exception as ex:  # noqa: BLE001 - record and go on
                        errors.append(f"{p}: {ex}")
            wall = time.perf_counter() - t0
            ed = sum(edits(refs[p], normalise_de(got.get(p, ("", None))[0])) for p in paths)
            detected = {}
            for p in paths:
                d = got.get(p, (None, None))[1] or "?"
                detected[d] = detected.get(d, 0) + 1
            results[key] = {
                "wer": ed / n_ref if n_ref else 0.0, "edits": ed, "ref_words": n_ref, "wall_s": wall,
                "missing": sum(1 for p in paths if p not in got),
                "with_digits": sum(1 for p in paths if re.search(r"\d", got.get(p, ("", None))[0])),
                "detected_languages": detected, "errors": errors,
            }
            hyps[key] = got
            failed |= bool(errors)
            log(f"  {key}: WER {100 * results[key]['wer']:.2f}% ({ed}/{n_ref}) in {wall:.1f} s")

    stamp = time.strftime("%Y%m%d-%H%M%S")
    json_path = os.path.abspath(a.json or os.path.join(CACHE, "bench", f"german-{stamp}.json"))
    os.makedirs(os.path.dirname(json_path), exist_ok=True)
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump({"when": stamp, "set": os.path.abspath(a.set), "model": model, "files": len(rows),
                   "threads": a.threads, "beam": a.beam, "normalisation": "NFKC, lowercase, "
                   "non-letter/digit/space -> space, whitespace collapsed; umlauts and ß kept; "
                   "digits not spelled out", "results": results}, f, indent=2, ensure_ascii=False)
        f.write("\n")
    tsv_path = os.path.splitext(json_path)[0] + ".tsv"
    with open(tsv_path, "w", encoding="utf-8") as f:
        keys = list(hyps)
        f.write("\t".join(["id", "file", "reference"] + [c for k in keys for c in (f"hyp:{k}", f"lang:{k}",
                                                                                  f"edits:{k}")]) + "\n")
        for r in rows:
            p = r["path"]
            cells = [r.get("id", ""), p, r["text"]]
            for k in keys:
                text, lang = hyps[k].get(p, ("<missing>", None))
                cells += [text, lang or "", str(edits(refs[p], normalise_de("" if text == "<missing>" else text)))]
            f.write("\t".join(c.replace("\t", " ").replace("\n", " ") for c in cells) + "\n")

    print(f"\nGerman WER on {len(rows)} espeak-ng utterances ({n_ref} reference words); model {model}; "
          f"{a.threads} threads, beam {a.beam}")
    print(f"{'engine:language':24} {'WER':>8} {'edits':>6} {'digits':>6} {'wall s':>7}  detected languages")
    for k, r in results.items():
        det = ", ".join(f"{l} {n}" for l, n in sorted(r["detected_languages"].items(), key=lambda x: -x[1]))
        print(f"{k:24} {100 * r['wer']:7.2f}% {r['edits']:6d} {r['with_digits']:6d} {r['wall_s']:7.1f}  {det}")
        for err in r["errors"][:3]:
            print(f"  ERROR {err}")
    print(f"\nJSON: {json_path}\nTSV:  {tsv_path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
