#!/usr/bin/env python3
"""The shared eval transcripts as LM text, the held-out text of the LM benchmarks: one sentence
per line, lower case, letters and apostrophes only, manifests in name order.

    bench/lm/eval_text.py SHARED_EVAL_DIR OUT [--repeat N]
"""
import argparse
import json
import pathlib
import re

ap = argparse.ArgumentParser()
ap.add_argument("eval_dir")
ap.add_argument("out")
ap.add_argument("--repeat", type=int, default=1, help="write the sentences N times (throughput runs)")
a = ap.parse_args()
lines = []
for manifest in sorted(pathlib.Path(a.eval_dir).glob("*/manifest.jsonl")):
    for line in open(manifest, encoding="utf-8"):
        text = json.loads(line).get("text")
        if text:
            lines.append(" ".join(re.sub(r"[^a-z' ]+", " ", text.lower()).split()))
open(a.out, "w", encoding="utf-8").write("\n".join(lines * a.repeat) + "\n")
