#!/usr/bin/env python3
"""Compare Harken with faster-whisper on the same model directory and the same audio, in one run.

Usually run through bench/run.sh (which sets up the faster-whisper venv and finds the binary):

    bench/run.sh                                  # everything, whisper-base, R=5
    bench/run.sh --skip-wer --runs 3              # speed only
    bench/run.sh --engines fw --limit 3 --model ~/.cache/harken/models/whisper-tiny.en
    ~/.cache/harken/bench-venv/bin/python bench/compare.py --help

Engines: `harken` (the binary: --harken-bin, else $HARKEN_BIN, else
${CARGO_TARGET_DIR:-~/.cache/harken/target}/release/harken) and faster-whisper 1.2.1 in
compute types int8 and float32 (`fw-int8`, `fw-float32`; `fw` means both). Every engine gets
--threads (2), --beam (5), VAD off, --language (en). Sections:

  speed   the ~10 s clip ../shared/eval/real/audio/mv_beckett.wav, R rounds (--runs, 5), engines
          interleaved within each round and their order rotated from round to round:
          * transcription time with the model loaded: faster-whisper in this process, after one
            untimed warm-up (`model.transcribe(path, beam_size, language, vad_filter=False)` and
            `list(segments)`); Harken as ONE `harken bench --model DIR --json --runs 1+W
            --threads T --beam B --language L CLIP` process per round, of whose runs_seconds the
            first W (--harken-warmup, 1) are dropped as warm-up. Min and median per engine.
          * cold start: a fresh process to the first transcript, wall time from this (parent)
            process; `harken transcribe --model DIR --threads T --beam B --language L CLIP` vs
            `python -c` importing faster_whisper, loading the model and transcribing. Peak RSS of
            each such process is its own ru_maxrss, reported by /usr/bin/time -f %M (or, without
            it, a tiny fork+exec helper's os.wait4) - NOT os.wait4 from this process, whose own
            RSS would leak into the child's ru_maxrss through fork/vfork + exec.
  wer     corpus WER (total edits / total reference words, normalised by
          ../shared/wer_reference.py, imported from there) on ../shared/eval/dev and on the rows
          of ../shared/eval/real whose text is non-empty. Harken runs as ONE process over all
          files: `harken transcribe --model DIR --threads T --beam B --language L --format json
          FILE...`, one JSON object per line per file ({"file", "text", ...}).

Results: a side-by-side table with ratios Harken / faster-whisper on stdout, the full record as
JSON (--json, default ${HARKEN_CACHE_DIR:-~/.cache/harken}/bench/compare-<time>.json) and
per-file hypotheses and edit counts in a TSV beside it (same name, .tsv).

Exit codes: 0 ok; 1 an engine failed somewhere (see the table / JSON); 2 bad setup (harken binary
or ../shared or the model missing).
"""
import argparse
import importlib.util
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("HARKEN_CACHE_DIR") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "harken")
FW_COMPUTE = ("int8", "float32")
HARKEN_ENGINES = ("harken", "harken-f32", "harken-avx512", "harken-avx2", "harken-scalar")
HARKEN_TIMEOUT_S = 1800

FW_COLD = r"""
import sys
from faster_whisper import WhisperModel
model_dir, compute, threads, path, beam, lang = sys.argv[1:7]
m = WhisperModel(model_dir, device="cpu", compute_type=compute, cpu_threads=int(threads),
                 local_files_only=True)
segments, info = m.transcribe(path, beam_size=int(beam), language=None if lang == "auto" else lang,
                              vad_filter=False)
print("".join(s.text for s in segments).strip())
"""


PROG = "compare"  # prefix of messages; bench/german_wer.py sets its own


def die(msg: str, code: int = 2):
    print(f"{PROG}: {msg}", file=sys.stderr)
    sys.exit(code)


def log(msg: str):
    print(msg, file=sys.stderr, flush=True)


def default_harken_bin() -> str:
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(os.path.expanduser("~/.cache/harken"), "target")
    return os.environ.get("HARKEN_BIN") or os.path.join(target, "release", "harken")


def load_wer_reference(shared: str):
    path = os.path.join(shared, "wer_reference.py")
    if not os.path.isfile(path):
        die(f"{path} is missing: the WER normalisation lives in ../shared/wer_reference.py "
            "(team material beside the repository); use --skip-wer to run without it")
    spec = importlib.util.spec_from_file_location("wer_reference", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# Peak RSS must be read by a *small* parent: a child forked (or vforked, as subprocess does) from
# this process inherits this process's RSS high-water mark, which exec folds into the child's
# ru_maxrss, so os.wait4 on a direct child reports max(our RSS, its RSS). /usr/bin/time (or the
# tiny fork+exec helper below when it is missing) waits for the real process and reports its own.
TIME_BIN = "/usr/bin/time"
RSS_HELPER = r"""
import os, sys
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, ru = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write("%d\n" % ru.ru_maxrss)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def rss_method() -> str:
    if os.access(TIME_BIN, os.X_OK):
        return "/usr/bin/time -f %M (ru_maxrss of the measured process)"
    return "python fork+exec helper, os.wait4 ru_maxrss (floor: the helper's ~10 MB)"


def run_measured(cmd, timeout=HARKEN_TIMEOUT_S, env=None):
    """Run cmd as a fresh process; return (rc, wall_s, maxrss_bytes, stdout, stderr).

    Wall time is taken here, from spawn to reap (the wrapper adds ~1 ms with /usr/bin/time, ~20 ms
    with the python helper). Peak RSS is the process's own ru_maxrss (KiB on Linux) as reported by
    its small wrapper (see TIME_BIN). Output goes to temp files so a pipe never blocks it.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile(mode="r", suffix=".rss") as rssf:
        if os.access(TIME_BIN, os.X_OK):
            wrapped = [TIME_BIN, "-f", "%M", "-o", rssf.name, *cmd]
        else:
            wrapped = [sys.executable, "-S", "-c", RSS_HELPER, rssf.name, *cmd]
        t0 = time.perf_counter()
        p = subprocess.Popen(wrapped, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env,
                             start_new_session=True)
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, 9)
            rc = p.wait()
        wall = time.perf_counter() - t0
        rssf.seek(0)
        last = [ln for ln in rssf.read().splitlines() if ln.strip()]
        try:
            rss = int(last[-1]) * 1024
        except (IndexError, ValueError):
            rss = None
        out.seek(0)
        err.seek(0)
        return (rc, wall, rss, out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace"))


def tail(s: str, n: int = 600) -> str:
    s = s.strip()
    return s if len(s) <= n else "..." + s[-n:]


def stats(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return {"n": len(xs), "min": min(xs), "median": statistics.median(xs), "max": max(xs), "all": xs}


def parse_json_lines(stdout: str):
    """Objects from stdout lines that parse as JSON objects (log lines are ignored)."""
    objs = []
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                objs.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return objs


def parse_bench_json(stdout: str):
    try:
        return json.loads(stdout)
    except json.JSONDecodeError:
        objs = parse_json_lines(stdout)
        return objs[-1] if objs else None


class Harken:
    """One Harken configuration: `harken` (the --harken-model at --harken-precision, kernel path
    auto), `harken-f32` (the float model in f32), `harken-<path>` (HARKEN_CPU=<path>)."""

    def __init__(self, binary, model, threads, beam, language, precision="f32", name="harken", cpu=None):
        self.bin, self.model, self.threads, self.beam, self.language = binary, model, threads, beam, language
        self.precision, self.name, self.cpu = precision, name, cpu
        self.env = dict(os.environ, HARKEN_CPU=cpu) if cpu else None

    def common(self):
        return ["--model", self.model, "--threads", str(self.threads), "--beam", str(self.beam),
                "--language", self.language, "--precision", self.precision]

    def version(self):
        try:
            r = subprocess.run([self.bin, "--version"], capture_output=True, text=True, timeout=30)
            return r.stdout.strip() or r.stderr.strip()
        except Exception as e:  # noqa: BLE001 - informational only
            return f"unknown ({e})"

    def bench(self, clip, runs):
        cmd = [self.bin, "bench", "--model", self.model, "--json", "--runs", str(runs),
               "--threads", str(self.threads), "--beam", str(self.beam), "--language", self.language,
               "--precision", self.precision, clip]
        rc, wall, rss, out, err = run_measured(cmd, env=self.env)
        doc = parse_bench_json(out) if rc == 0 else None
        if not isinstance(doc, dict) or not doc.get("files"):
            why = "no bench JSON with `files` on stdout" if rc == 0 else "failed"
            return None, f"`{shlex.join(cmd)}` rc={rc}, {why}: {tail(err or out)}"
        return doc, None

    def cold(self, clip):
        cmd = [self.bin, "transcribe", *self.common(), clip]
        rc, wall, rss, out, err = run_measured(cmd, env=self.env)
        if rc != 0 or not out.strip():
            why = "empty transcript" if rc == 0 else "failed"
            return None, f"`{shlex.join(cmd)}` rc={rc}, {why}: {tail(err or out)}"
        return {"wall_s": wall, "peak_rss_bytes": rss, "text": out.strip()}, None

    def transcribe_many(self, paths):
        """One process over all files; returns ({realpath: obj}, wall_s, error or None)."""
        cmd = [self.bin, "transcribe", *self.common(), "--format", "json", *paths]
        rc, wall, rss, out, err = run_measured(cmd, timeout=4 * HARKEN_TIMEOUT_S, env=self.env)
        by_path, by_base = {}, {}
        for o in parse_json_lines(out):
            if "file" in o:
                by_path[os.path.realpath(o["file"])] = o
                by_base.setdefault(os.path.basename(o["file"]), []).append(o)
        found = {}
        for p in paths:
            o = by_path.get(os.path.realpath(p))
            if o is None and len(by_base.get(os.path.basename(p), [])) == 1:
                o = by_base[os.path.basename(p)][0]
            if o is not None:
                found[p] = o
        error = None
        if rc != 0 or len(found) < len(paths):
            error = (f"harken transcribe rc={rc}, {len(found)}/{len(paths)} files answered: "
                     f"{tail(err, 1000)}")
        return found, wall, rss, error


class FasterWhisper:
    def __init__(self, compute, model, threads, beam, language):
        self.compute, self.model_dir, self.threads, self.beam, self.language = compute, model, threads, beam, language
        self.name = f"fw-{compute}"
        self.model = None
        self.load_s = None

    def load(self):
        from faster_whisper import WhisperModel
        t0 = time.perf_counter()
        self.model = WhisperModel(self.model_dir, device="cpu", compute_type=self.compute,
                                  cpu_threads=self.threads, local_files_only=True)
        self.load_s = time.perf_counter() - t0

    def transcribe(self, path):
        t0 = time.perf_counter()
        segments, info = self.model.transcribe(path, beam_size=self.beam, vad_filter=False,
                                               language=None if self.language == "auto" else self.language)
        segments = list(segments)
        dt = time.perf_counter() - t0
        return "".join(s.text for s in segments).strip(), dt, info.language

    def cold(self, clip):
        cmd = [sys.executable, "-c", FW_COLD, self.model_dir, self.compute, str(self.threads), clip,
               str(self.beam), self.language]
        rc, wall, rss, out, err = run_measured(cmd)
        if rc != 0 or not out.strip():
            return None, f"faster-whisper cold start ({self.compute}) rc={rc}: {tail(err or out)}"
        return {"wall_s": wall, "peak_rss_bytes": rss, "text": out.strip()}, None


def speed_section(engines, harkens, fws, clip, rounds, warmup, res):
    sec = {"clip": clip, "rounds": rounds, "harken_warmup_runs_dropped": warmup, "engines": {}}
    res["speed"] = sec
    per = {e: {"warm": [], "cold": [], "rss": [], "texts": set(), "errors": []} for e in engines}
    bench_docs = {}
    for fw in fws:  # untimed warm-up so the first timed call pays no lazy initialisation
        text, dt, _ = fw.transcribe(clip)
        sec["engines"].setdefault(fw.name, {})["warmup_s"] = dt
        log(f"  {fw.name}: loaded in {fw.load_s:.2f} s, warm-up transcription {dt:.2f} s: {text!r}")
    for r in range(rounds):
        order = engines[r % len(engines):] + engines[:r % len(engines)]
        # warm: model already loaded
        for e in order:
            if e in harkens:
                doc, err = harkens[e].bench(clip, 1 + warmup)
                if err:
                    per[e]["errors"].append(err)
                    continue
                bench_docs.setdefault(e, []).append(doc)
                f0 = (doc.get("files") or [{}])[0]
                runs = f0.get("runs_seconds") or []
                per[e]["warm"].extend(runs[warmup:] if len(runs) > warmup else runs)
                per[e]["texts"].add((f0.get("text") or "").strip())
            else:
                fw = next(f for f in fws if f.name == e)
                try:
                    text, dt, _ = fw.transcribe(clip)
                except Exception as ex:  # noqa: BLE001 - record and go on
                    per[e]["errors"].append(f"{e} transcribe: {ex}")
                    continue
                per[e]["warm"].append(dt)
                per[e]["texts"].add(text)
        # cold: fresh process
        for e in order:
            if e in harkens:
                c, err = harkens[e].cold(clip)
            else:
                c, err = next(f for f in fws if f.name == e).cold(clip)
            if err:
                per[e]["errors"].append(err)
                continue
            per[e]["cold"].append(c["wall_s"])
            per[e]["rss"].append(c["peak_rss_bytes"])
            per[e]["texts"].add(c["text"])
        log(f"  round {r + 1}/{rounds}: " + ", ".join(
            f"{e} warm {per[e]['warm'][-1]:.2f}s cold {per[e]['cold'][-1]:.2f}s"
            if per[e]["warm"] and per[e]["cold"] else f"{e} failed" for e in engines))
    for e in engines:
        d = sec["engines"].setdefault(e, {})
        d["transcribe_s"] = stats(per[e]["warm"])
        d["cold_start_s"] = stats(per[e]["cold"])
        d["cold_peak_rss_bytes"] = stats(per[e]["rss"])
        d["texts"] = sorted(per[e]["texts"])
        d["errors"] = per[e]["errors"]
    for e, docs in bench_docs.items():
        d = sec["engines"][e]
        d["bench_json"] = docs
        loads = [b.get("load_seconds") for b in docs if isinstance(b.get("load_seconds"), (int, float))]
        d["load_s"] = stats(loads)
        d["bench_peak_rss_bytes"] = stats([b.get("peak_rss_bytes") for b in docs
                                           if isinstance(b.get("peak_rss_bytes"), int)])
        d["cpu_path"] = sorted({b.get("cpu_path") for b in docs if b.get("cpu_path")})
        d["precision"] = sorted({b.get("precision") for b in docs if b.get("precision")})
        stages = {}
        for b in docs:
            for k, v in ((b.get("files") or [{}])[0].get("stages") or {}).items():
                if isinstance(v, (int, float)):
                    stages.setdefault(k, []).append(v)
        d["stages_median_s"] = {k: statistics.median(v) for k, v in stages.items()}
    for fw in fws:
        sec["engines"][fw.name]["load_s"] = stats([fw.load_s])


def wer_section(engines, harkens, fws, wr, shared, sets, limit, res, rows_out):
    sec = {"sets": {}, "engines": {}}
    res["wer"] = sec
    items = []
    for s in sets:
        mpath = os.path.join(shared, "eval", s, "manifest.jsonl")
        if not os.path.isfile(mpath):
            die(f"{mpath} is missing (set {s!r}); the evaluation sets live in ../shared/eval/")
        rows = [r for r in wr.manifest(mpath) if (r.get("text") or "").strip()]
        if limit:
            rows = rows[:limit]
        sec["sets"][s] = {"manifest": mpath, "files": len(rows)}
        items += [(s, r) for r in rows]
    hyps = {e: {} for e in engines}
    for e in engines:
        t0 = time.perf_counter()
        errors = []
        if e in harkens:
            paths = [r["path"] for _, r in items]
            log(f"  {e}: one process over {len(paths)} files ...")
            found, wall, rss, err = harkens[e].transcribe_many(paths)
            for p, o in found.items():
                hyps[e][p] = (o.get("text") or "").strip()
            if err:
                errors.append(err)
            sec["engines"][e] = {"wall_s": wall, "peak_rss_bytes": rss}
        else:
            fw = next(f for f in fws if f.name == e)
            log(f"  {e}: {len(items)} files ...")
            for _, r in items:
                try:
                    hyps[e][r["path"]] = fw.transcribe(r["path"])[0]
                except Exception as ex:  # noqa: BLE001 - record and go on
                    errors.append(f"{r['path']}: {ex}")
            sec["engines"][e] = {"wall_s": time.perf_counter() - t0}
        sec["engines"][e]["errors"] = errors
        sec["engines"][e]["missing"] = sum(1 for _, r in items if r["path"] not in hyps[e])
        for s in sets:
            pairs = [(r["text"], hyps[e].get(r["path"], "")) for ss, r in items if ss == s]
            w, ed, n = wr.corpus_wer(pairs)
            sec["engines"][e].setdefault("sets", {})[s] = {"wer": w, "edits": ed, "ref_words": n}
            log(f"  {e} {s}: WER {100 * w:.2f}% ({ed}/{n})")
    for s, r in items:
        ref = wr.normalise(r["text"])
        row = {"set": s, "id": r.get("id", ""), "file": r["path"], "ref_words": len(ref), "reference": r["text"]}
        for e in engines:
            h = hyps[e].get(r["path"])
            row[f"hyp:{e}"] = "<missing>" if h is None else h
            row[f"edits:{e}"] = wr.edits(ref, wr.normalise(h or ""))
        rows_out.append(row)


def fmt(v, kind):
    if v is None:
        return "-"
    if kind == "s":
        return f"{v:.3f}"
    if kind == "mib":
        return f"{v / 2**20:.0f}"
    if kind == "pct":
        return f"{100 * v:.2f}%"
    return str(v)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}x"


def print_table(res, engines):
    fws = [e for e in engines if e.startswith("fw-")]
    hs = [e for e in engines if e.startswith("harken")]
    pairs = [(h, f) for h in hs for f in fws]
    head = ["metric"] + engines + [f"{h}/{f}" for h, f in pairs]
    lines = []

    def add(label, vals, kind):
        lines.append([label] + [fmt(vals.get(e), kind) for e in engines]
                     + [ratio(vals.get(h), vals.get(f)) for h, f in pairs])

    sp = res.get("speed")
    if sp:
        E = sp["engines"]
        pick = lambda key, st: {e: ((E.get(e) or {}).get(key) or {}).get(st) for e in engines}
        add("transcribe min (s)", pick("transcribe_s", "min"), "s")
        add("transcribe median (s)", pick("transcribe_s", "median"), "s")
        add("cold start min (s)", pick("cold_start_s", "min"), "s")
        add("cold start median (s)", pick("cold_start_s", "median"), "s")
        add("cold peak RSS median (MiB)", pick("cold_peak_rss_bytes", "median"), "mib")
        add("cold peak RSS max (MiB)", pick("cold_peak_rss_bytes", "max"), "mib")
        add("model load median (s)", pick("load_s", "median"), "s")
    wr = res.get("wer")
    if wr:
        for s in wr["sets"]:
            vals = {e: (((wr["engines"].get(e) or {}).get("sets") or {}).get(s) or {}).get("wer") for e in engines}
            add(f"WER {s} ({wr['sets'][s]['files']} files)", vals, "pct")
        add("WER pass wall (s; harken incl. load)", {e: (wr["engines"].get(e) or {}).get("wall_s") for e in engines}, "s")
    widths = [max(len(str(r[i])) for r in [head] + lines) for i in range(len(head))]
    out = ["  ".join(str(c).ljust(widths[i]) if i == 0 else str(c).rjust(widths[i]) for i, c in enumerate(r))
           for r in [head] + lines]
    out.insert(1, "-" * len(out[0]))
    print("\n".join(out))


def main():
    ap = argparse.ArgumentParser(description="Harken vs faster-whisper: speed, cold start, RSS, WER.",
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--model", default=os.path.join(CACHE, "models", "whisper-base"),
                    help="CTranslate2 Whisper model directory used by both engines (default: %(default)s)")
    ap.add_argument("--engines", default="harken,fw",
                    help="comma list of harken, harken-f32 (the float model in f32), harken-avx512, "
                         "harken-avx2, harken-scalar (HARKEN_CPU set), fw (= fw-int8,fw-float32), "
                         "fw-int8, fw-float32")
    ap.add_argument("--harken-model",
                    help="model directory of the `harken` engines (default: --model; e.g. the "
                         "int8 directory written by `harken model quantize`)")
    ap.add_argument("--harken-bin", default=default_harken_bin(),
                    help="harken binary (default: $HARKEN_BIN or ${CARGO_TARGET_DIR:-~/.cache/harken/target}/release/harken)")
    ap.add_argument("--language", default="en", help="language code, or auto (default: en)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--harken-precision", default="f32", choices=["f32", "int8"],
                    help="Harken's in-memory weight precision (default: %(default)s)")
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--runs", type=int, default=5, help="rounds R for the speed section (default: 5)")
    ap.add_argument("--harken-warmup", type=int, default=1,
                    help="runs dropped at the start of each `harken bench` process (default: 1)")
    ap.add_argument("--shared", default=os.path.normpath(os.path.join(ROOT, "..", "shared")),
                    help="team material folder (default: ../shared beside the repository)")
    ap.add_argument("--clip", help="speed clip (default: SHARED/eval/real/audio/mv_beckett.wav)")
    ap.add_argument("--sets", default="dev,real", help="WER sets under SHARED/eval (default: dev,real)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N referenced files per set")
    ap.add_argument("--skip-wer", action="store_true")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--json", help="write results here (default: $HARKEN_CACHE_DIR/bench/compare-<time>.json); "
                                   "per-file hypotheses go to the same name with .tsv")
    a = ap.parse_args()

    engines = []
    for e in a.engines.split(","):
        e = e.strip()
        if e == "fw":
            engines += [f"fw-{c}" for c in FW_COMPUTE]
        elif e in HARKEN_ENGINES or e in (f"fw-{c}" for c in FW_COMPUTE):
            engines.append(e)
        elif e:
            die(f"unknown engine {e!r} ({', '.join(HARKEN_ENGINES)}, fw, fw-int8, fw-float32)")
    engines = list(dict.fromkeys(engines))
    if not engines:
        die("no engines")
    if a.skip_wer and a.skip_speed:
        die("--skip-wer and --skip-speed together leave nothing to do")

    model = os.path.abspath(os.path.expanduser(a.model))
    if not os.path.isfile(os.path.join(model, "model.bin")):
        die(f"model directory {model} has no model.bin; install it with scripts/install-models.sh")
    harkens = {}
    hmodel = os.path.abspath(os.path.expanduser(a.harken_model)) if a.harken_model else model
    if any(e in HARKEN_ENGINES for e in engines):
        hb = os.path.abspath(os.path.expanduser(a.harken_bin))
        if not (os.path.isfile(hb) and os.access(hb, os.X_OK)):
            die(f"harken binary not found at {hb}: build it (cargo build --release) or set HARKEN_BIN "
                "/ --harken-bin; `--engines fw` runs the faster-whisper half alone")
        for e in engines:
            if e == "harken-f32":
                harkens[e] = Harken(hb, model, a.threads, a.beam, a.language, "f32", name=e)
            elif e in HARKEN_ENGINES:
                cpu = e[len("harken-"):] if e != "harken" else None
                harkens[e] = Harken(hb, hmodel, a.threads, a.beam, a.language, a.harken_precision, name=e, cpu=cpu)
    harken = next(iter(harkens.values()), None)

    shared = os.path.abspath(a.shared)
    if not os.path.isdir(shared) and (not a.skip_wer or not a.clip):
        die(f"{shared} not found: the team material (../shared beside the repository: eval/ audio "
            "and wer_reference.py) is needed for the WER sets and the default speed clip")
    clip = os.path.abspath(a.clip or os.path.join(shared, "eval", "real", "audio", "mv_beckett.wav"))
    if not a.skip_speed and not os.path.isfile(clip):
        die(f"speed clip {clip} is missing")
    wr = None if a.skip_wer else load_wer_reference(shared)

    stamp = time.strftime("%Y%m%d-%H%M%S")
    json_path = os.path.abspath(a.json or os.path.join(CACHE, "bench", f"compare-{stamp}.json"))
    tsv_path = os.path.splitext(json_path)[0] + ".tsv"
    os.makedirs(os.path.dirname(json_path), exist_ok=True)

    fws = [FasterWhisper(e[3:], model, a.threads, a.beam, a.language) for e in engines if e.startswith("fw-")]
    import faster_whisper
    import ctranslate2
    res = {
        "when": stamp, "model": model, "harken_model": hmodel, "language": a.language, "threads": a.threads, "beam": a.beam,
        "vad": False, "engines": engines,
        "versions": {"faster_whisper": faster_whisper.__version__, "ctranslate2": ctranslate2.__version__,
                     "python": platform.python_version(),
                     "harken": harken.version() if harken else None,
                     "harken_bin": harken.bin if harken else None},
        "machine": {"cpus": os.cpu_count(), "loadavg_start": os.getloadavg()},
        "peak_rss_method": rss_method(),
        "harken_invocation": {
            "speed": "one `harken bench --json --runs 1+W` process per round; first W runs dropped",
            "cold": "`harken transcribe` per round; wall from the parent, peak RSS per peak_rss_method",
            "wer": "one `harken transcribe --format json FILE...` process over all files",
        },
    }
    if os.getloadavg()[0] > (os.cpu_count() or 1):
        log(f"compare: warning: load average {os.getloadavg()[0]:.1f} exceeds {os.cpu_count()} CPUs; "
            "timings will be noisy (both engines are interleaved, so ratios suffer less)")
    log(f"compare: model {model}; engines {', '.join(engines)}; {a.threads} threads, beam {a.beam}, "
        f"language {a.language}, VAD off")
    for fw in fws:
        fw.load()

    rows = []
    if not a.skip_speed:
        log(f"speed: {clip}, {a.runs} rounds")
        speed_section(engines, harkens, fws, clip, a.runs, a.harken_warmup, res)
    if not a.skip_wer:
        sets = [s.strip() for s in a.sets.split(",") if s.strip()]
        log(f"wer: sets {', '.join(sets)}" + (f" (first {a.limit} files each)" if a.limit else ""))
        wer_section(engines, harkens, fws, wr, shared, sets, a.limit, res, rows)
    res["machine"]["loadavg_end"] = os.getloadavg()

    with open(json_path, "w") as f:
        json.dump(res, f, indent=2, default=list)
        f.write("\n")
    if rows:
        cols = list(rows[0].keys())
        with open(tsv_path, "w") as f:
            f.write("\t".join(cols) + "\n")
            for r in rows:
                f.write("\t".join(str(r[c]).replace("\t", " ").replace("\n", " ") for c in cols) + "\n")

    print()
    print(f"Harken vs faster-whisper {faster_whisper.__version__} (CTranslate2 {ctranslate2.__version__}); "
          f"model {model}")
    print(f"{a.threads} threads, beam {a.beam}, VAD off, language {a.language}"
          + ("" if a.skip_speed else f"; speed clip {os.path.basename(clip)}, {a.runs} rounds")
          + f"; load avg {res['machine']['loadavg_start'][0]:.1f} -> {res['machine']['loadavg_end'][0]:.1f}")
    print()
    print_table(res, engines)
    for e in harkens:
        d = (res.get("speed") or {}).get("engines", {}).get(e) or {}
        st = d.get("stages_median_s")
        if st:
            print(f"{e} ({'/'.join(d.get('precision') or [])}, kernels {'/'.join(d.get('cpu_path') or [])}) "
                  "stages (median s): " + ", ".join(f"{k} {v:.3f}" for k, v in st.items()))
    failed = []
    for sec in ("speed", "wer"):
        for e, d in ((res.get(sec) or {}).get("engines") or {}).items():
            for err in d.get("errors") or []:
                failed.append(f"{sec}/{e}: {err}")
    for msg in failed[:10]:
        print(f"ERROR {msg}")
    print(f"\nJSON: {json_path}" + (f"\nTSV:  {tsv_path}" if rows else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
