#!/usr/bin/env python3
"""Build the training sentences for the CTC head.

Sources are text that installs from the package registries here: the Debian `fortunes` package
(about 30,000 quotations, jokes and aphorisms). Sentences whose normalised form appears in, or
shares a 5-word run with, any reference transcript of ../shared/eval are dropped, so the
evaluation sets stay unseen.

Output: one line per sentence, `spoken<TAB>label`, where `spoken` is what the TTS engine reads and
`label` the CTC target (a-z, apostrophe, space).
"""
import argparse
import glob
import json
import os
import random
import re

ALLOWED = re.compile(r"^[A-Za-z ,.;:!?'\"()-]+$")


def label_of(text):
    t = text.lower().replace("-", " ")
    t = re.sub(r"[^a-z' ]", " ", t)
    t = " ".join(w.strip("'") for w in t.split())
    return " ".join(w for w in t.split() if w)


def fortunes(root):
    for path in sorted(glob.glob(os.path.join(root, "*"))):
        if path.endswith((".dat", ".u8")) or os.path.isdir(path) or os.path.islink(path):
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            body = f.read()
        for quote in body.split("\n%\n"):
            # Attributions ("-- Mark Twain") and indented verse layout are not sentences.
            lines = [l.strip() for l in quote.splitlines() if not l.strip().startswith("--")]
            text = " ".join(l for l in lines if l)
            for sent in re.split(r"(?<=[.!?])\s+", text):
                yield sent.strip()


def lm_vocab(path):
    import gzip
    vocab, on = set(), False
    with (gzip.open if path.endswith(".gz") else open)(path, "rt", encoding="latin-1") as f:
        for line in f:
            if line.startswith("\\1-grams:"):
                on = True
            elif line.startswith("\\2-grams:"):
                break
            elif on and line.strip():
                vocab.add(line.split("\t")[1].strip())
    return vocab


def eval_texts(shared):
    out = []
    for m in glob.glob(os.path.join(shared, "eval", "*", "manifest.jsonl")):
        for line in open(m, encoding="utf-8"):
            t = json.loads(line).get("text") or ""
            if t:
                out.append(label_of(t))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fortunes", default="/usr/share/games/fortunes")
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--lm", help="ARPA LM whose unigrams define English words (drops other languages)")
    args = ap.parse_args()

    banned_sent, banned_5 = set(), set()
    for t in eval_texts(args.shared):
        banned_sent.add(t)
        w = t.split()
        banned_5.update(tuple(w[i : i + 5]) for i in range(len(w) - 4))
    vocab = lm_vocab(args.lm) if args.lm else None
    seen, keep, dropped = set(), [], 0
    for s in fortunes(args.fortunes):
        if not ALLOWED.match(s) or any(c.isdigit() for c in s):
            continue
        lab = label_of(s)
        w = lab.split()
        if not 2 <= len(w) <= 28 or lab in seen:
            continue
        if vocab is not None and sum(x in vocab for x in w) < len(w):
            continue
        if lab in banned_sent or any(tuple(w[i : i + 5]) in banned_5 for i in range(len(w) - 4)):
            dropped += 1
            continue
        seen.add(lab)
        keep.append((s, lab))
    random.Random(args.seed).shuffle(keep)
    with open(args.out, "w", encoding="utf-8") as f:
        for s, lab in keep:
            f.write(f"{s}\t{lab}\n")
    print(f"{len(keep)} sentences, {sum(len(l.split()) for _, l in keep)} words; "
          f"{dropped} dropped for overlapping eval transcripts")


if __name__ == "__main__":
    main()
