"""Harken on Apache Spark (local mode) against `harken batch`: same inputs, same transcripts?

Runs a Spark job in local mode (`local[W]`) over a manifest: the absolute audio paths become an
RDD of W partitions, each piped through one `harken batch --jsonl` worker process (RDD.pipe: one
request line in, one JSON result line out), the result lines are collected and written to
OUT/spark.jsonl. Then the same inputs go through one `harken batch --manifest ... --jobs W
--threads T` process for each T in --batch-threads (default 1 and W; OUT/batch-tT/index.jsonl).
Every input must come back exactly once from Spark and from each batch run, with the same status
and the same text; mismatches are listed and the exit status is 1.

    spark_batch.py --harken target/release/harken --manifest M.jsonl --out DIR
                   [--workers 2] [--model tiny.en] [--limit N] [--pipe pyspark|jvm]
                   [--batch-threads 1,2]

--pipe pyspark (default) is PySpark's RDD.pipe: a Python worker per task starts harken and feeds
it the lines. --pipe jvm calls Spark's own (Scala) RDD.pipe through the gateway: the executor JVM
starts harken itself and no Python process is in the data path. Either way the worker's
environment is this process's environment (HARKEN_TEST_RUN and the model cache included):
PySpark's pipe() would otherwise start it with an EMPTY environment.

Why two batch runs: `harken batch`'s --jobs share its --threads compute threads, so `--jobs W
--threads 1` computes on one thread while Spark's W workers (`--threads 1` each) compute on W;
`--threads W` is the same core budget as Spark.

Reports files/s, audio seconds per wall second and files/s per core (files/s / W) for Spark and
each batch run (with the cores a batch run used: its CPU time / wall), and Spark's overhead ratio
(Spark wall / harken batch wall), Spark's wall measured from SparkContext creation (JVM start
included) to the collected results, and for the job alone. Before timing, the audio and the model
are read once (page cache; --no-warmup skips it). Writes OUT/summary.json. Exit: 0 all equal, 1
any difference, missing, duplicate or failed record, 2 a setup error (bad manifest, Spark or
harken failed).
"""

import argparse
import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
import time


def die(msg):
    print(f"spark: {msg}", file=sys.stderr)
    sys.exit(2)


def read_manifest(path, limit):
    base = os.path.dirname(os.path.abspath(path))
    inputs = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            if line.lstrip().startswith("{"):
                try:
                    row = json.loads(line)
                    audio = row["audio"]
                except (ValueError, KeyError, TypeError):
                    die(f"{path}:{n}: not a JSON object with \"audio\"")
            else:  # a bare path, as `harken batch` takes too
                row, audio = {}, line.strip()
            if not os.path.isabs(audio):
                audio = os.path.join(base, audio)
            audio = os.path.abspath(audio)
            if not os.path.isfile(audio):
                die(f"{path}:{n}: {audio} does not exist")
            inputs.append({"id": str(row.get("id", f"line{n}")), "audio": audio})
            if limit and len(inputs) >= limit:
                break
    if not inputs:
        die(f"{path}: no inputs")
    keys = [key_path(i["audio"]) for i in inputs]
    if len(set(keys)) != len(keys):
        die(f"{path}: the same audio file is listed twice; results are matched by path")
    return inputs


def key_path(path):
    return os.path.realpath(path)


def run_spark(inputs, args, pipe_cmd):
    """The Spark job. Returns (result lines, context start s, job s, stop s)."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # The Python workers (--pipe pyspark) run this interpreter: the venv with pyspark.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark import SparkConf, SparkContext

    conf = (SparkConf().setMaster(f"local[{args.workers}]").setAppName("harken-spark-batch")
            .set("spark.ui.enabled", "false")
            .set("spark.ui.showConsoleProgress", "false")
            .set("spark.driver.host", "127.0.0.1")
            .set("spark.driver.bindAddress", "127.0.0.1")
            .set("spark.driver.memory", "1g")
            .set("spark.default.parallelism", str(args.workers)))
    # Requests as JSON objects (a path with odd characters stays one line); "id" comes back.
    lines = [json.dumps({"audio": i["audio"], "id": i["id"]}) for i in inputs]
    env = dict(os.environ)
    t0 = time.perf_counter()
    sc = None
    try:
        sc = SparkContext(conf=conf)
        sc.setLogLevel("ERROR")
        t1 = time.perf_counter()
        if args.pipe == "pyspark":
            rdd = sc.parallelize(lines, numSlices=args.workers)
            out = rdd.pipe(shlex.join(pipe_cmd), env=env, checkCode=True).collect()
        else:
            jvm = sc._jvm
            jlines = jvm.java.util.ArrayList()
            for line in lines:
                jlines.add(line)
            jcmd = jvm.java.util.ArrayList()
            for part in pipe_cmd:
                jcmd.add(part)
            # JavaRDDLike.pipe(command, env, separateWorkingDir, bufferSize, encoding): the JVM
            # starts the worker, inheriting its own environment (ours) plus the (empty) map.
            jrdd = sc._jsc.parallelize(jlines, args.workers)
            piped = jrdd.pipe(jcmd, jvm.java.util.HashMap(), False, 8192, "UTF-8")
            out = [str(x) for x in piped.collect()]
        t2 = time.perf_counter()
    except Exception as e:  # noqa: BLE001 - described now: a Py4J error needs the live JVM
        raise SparkFailed(describe(e)) from None
    finally:
        t_stop = time.perf_counter()
        try:
            if sc is not None:
                sc.stop()
        finally:
            stop_jvm()
    t3 = time.perf_counter()
    return out, t1 - t0, t2 - t1, t3 - t_stop


class SparkFailed(Exception):
    pass


def describe(e):
    try:
        text = str(e)
    except Exception:  # noqa: BLE001
        text = repr(e)
    # The first lines name the cause (PIPE_FUNCTION_EXITED, the command, its exit code).
    keep = [line for line in text.splitlines() if line.strip() and not line.startswith("\tat ")]
    return f"{type(e).__name__}: " + "\n".join(keep[:12])


def stop_jvm():
    """sc.stop() leaves PySpark's gateway JVM running until this process exits; end it now, so
    that it neither competes with the batch runs timed next nor outlives a killed driver."""
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    proc = getattr(gateway, "proc", None)
    SparkContext._gateway = None
    SparkContext._jvm = None
    if gateway is not None:
        try:
            gateway.shutdown()
        except Exception:  # noqa: BLE001 - the JVM may already be gone
            pass
    if proc is not None:
        try:
            proc.stdin.close()  # the JVM exits when its stdin closes
        except (OSError, AttributeError):
            pass
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def parse_records(lines, where):
    records, bad = [], []
    for line in lines:
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict):
                raise ValueError("not an object")
            records.append(rec)
        except ValueError:
            bad.append(line)
    for line in bad[:5]:
        print(f"spark: {where}: not a JSON object: {line[:200]}", file=sys.stderr)
    return records, bad


def index_records(records, inputs, manifest_dir):
    """Match records to inputs by audio path (resolved like the manifest), else by id."""
    by_key = {key_path(i["audio"]): i for i in inputs}
    by_id = {i["id"]: key_path(i["audio"]) for i in inputs}
    got, extra = {}, []
    for rec in records:
        audio = rec.get("audio")
        key = None
        if isinstance(audio, str):
            path = audio if os.path.isabs(audio) else os.path.join(manifest_dir, audio)
            key = key_path(path)
        if key not in by_key:
            key = by_id.get(str(rec.get("id")))
        if key is None:
            extra.append(rec)
            continue
        got.setdefault(key, []).append(rec)
    return got, extra


def outcome(rec):
    if rec.get("status") == "ok":
        return ("ok", rec.get("text"))
    err = rec.get("error") or {}
    return (str(rec.get("status")), err.get("code") if isinstance(err, dict) else err)


def throughput(label, records, wall, workers):
    ok = [r for r in records if r.get("status") == "ok"]
    audio = sum(float(r.get("duration") or 0) for r in ok)
    fps = len(ok) / wall if wall > 0 else 0.0
    return {"engine": label, "files": len(ok), "failed": len(records) - len(ok),
            "wall_s": round(wall, 3), "files_per_s": round(fps, 4),
            "audio_s_per_wall_s": round(audio / wall if wall > 0 else 0.0, 3),
            "files_per_s_per_core": round(fps / workers, 4), "audio_s": round(audio, 3)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--harken", required=True)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--model", default="tiny.en")
    ap.add_argument("--limit", type=int, default=0, help="the first N files (0: all)")
    ap.add_argument("--pipe", choices=["pyspark", "jvm"], default="pyspark")
    ap.add_argument("--batch-threads", default="",
                    help="comma-separated --threads values for the harken batch runs "
                         "(default: 1 and W)")
    ap.add_argument("--no-warmup", action="store_true",
                    help="skip the untimed warm-up (page cache for the model and the audio)")
    args = ap.parse_args()
    if args.workers < 1:
        die("--workers must be at least 1")
    try:
        threads = [int(t) for t in (args.batch_threads or f"1,{args.workers}").split(",") if t]
    except ValueError:
        die(f"--batch-threads: not a list of numbers: {args.batch_threads}")
    args.batch_threads = list(dict.fromkeys(threads))
    if not args.batch_threads or min(args.batch_threads) < 1:
        die("--batch-threads: give at least one count, each at least 1")
    harken = os.path.abspath(args.harken)
    if not os.access(harken, os.X_OK):
        die(f"no harken binary at {harken}")
    inputs = read_manifest(args.manifest, args.limit)
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    manifest_dir = out

    # The inputs both engines see: one manifest with absolute paths (the --limit applied), only
    # the fields a request has (audio, id).
    manifest = os.path.join(out, "inputs.jsonl")
    with open(manifest, "w", encoding="utf-8") as f:
        for i in inputs:
            f.write(json.dumps({"audio": i["audio"], "id": i["id"]}) + "\n")

    if not args.no_warmup:
        # Untimed: the audio and the model into the page cache, so neither run pays for the disk.
        for i in inputs:
            with open(i["audio"], "rb") as f:
                while f.read(1 << 20):
                    pass
        warm = [harken, "transcribe", "--model", args.model, "--threads", "1", "--beam", "1",
                inputs[0]["audio"]]
        if subprocess.run(warm, stdout=subprocess.DEVNULL).returncode != 0:
            die(f"the warm-up `{shlex.join(warm)}` failed")

    load_start = os.getloadavg()[0]
    print(f"spark: {len(inputs)} files, model {args.model}, W={args.workers} "
          f"(local[{args.workers}], {args.pipe} pipe; harken batch --jobs {args.workers} "
          f"--threads {'/'.join(map(str, args.batch_threads))}), {os.cpu_count()} cores, "
          f"load {load_start:.2f}", flush=True)

    # 1. Spark local mode, RDD.pipe through the JSONL worker.
    pipe_cmd = [harken, "batch", "--jsonl", "--model", args.model, "--threads", "1",
                "--format", "json"]
    try:
        lines, ctx_s, job_s, stop_s = run_spark(inputs, args, pipe_cmd)
    except SparkFailed as e:
        die(f"the Spark job failed: {e}")
    spark_recs, spark_bad = parse_records(lines, "spark")
    with open(os.path.join(out, "spark.jsonl"), "w", encoding="utf-8") as f:
        for line in lines:
            f.write(line + "\n")

    sp, sp_extra = index_records(spark_recs, inputs, manifest_dir)
    spark_total = ctx_s + job_s
    rows = [throughput("spark", spark_recs, spark_total, args.workers),
            throughput("spark-job", spark_recs, job_s, args.workers)]
    problems, runs = [], []
    if spark_bad:
        problems.append({"problem": "unparsable lines", "engine": "spark", "lines": len(spark_bad)})
    for rec in sp_extra:
        problems.append({"audio": rec.get("audio"), "problem": "unknown input in output",
                         "engine": "spark"})

    # 2. One `harken batch` process over the same manifest, per --batch-threads setting: the jobs
    # share the --threads compute threads, so `--jobs W --threads 1` computes on one thread and
    # `--jobs W --threads W` on as many cores as Spark's W single-threaded workers.
    equal_min = len(inputs)
    for threads in args.batch_threads:
        label = f"batch-t{threads}"
        batch_dir = os.path.join(out, label)
        if os.path.isdir(batch_dir):
            shutil.rmtree(batch_dir)
        cmd = [harken, "batch", "--manifest", manifest, "--output", batch_dir, "--format", "json",
               "--jobs", str(args.workers), "--threads", str(threads), "--model", args.model]
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        rc = subprocess.run(cmd, stdout=subprocess.DEVNULL).returncode
        batch_s = time.perf_counter() - t
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        index = os.path.join(batch_dir, "index.jsonl")
        if not os.path.isfile(index):
            die(f"`{shlex.join(cmd)}` exited {rc} and wrote no {index}")
        if rc not in (0, 2):  # 2: some inputs failed (compared below); else it did not finish
            die(f"`{shlex.join(cmd)}` exited {rc}")
        with open(index, encoding="utf-8") as f:
            batch_recs, batch_bad = parse_records(f.read().splitlines(), f"{label} index")
        row = throughput(label, batch_recs, batch_s, args.workers)
        row["cpu_s"] = round(cpu_s, 2)
        row["cores_used"] = round(cpu_s / batch_s, 2) if batch_s > 0 else 0.0
        rows.append(row)

        # 3. Compare: every input exactly once in both, the same status and text.
        bt, bt_extra = index_records(batch_recs, inputs, manifest_dir)
        equal = 0
        for i in inputs:
            k = key_path(i["audio"])
            a, b = sp.get(k, []), bt.get(k, [])
            if len(a) != 1 or len(b) != 1:
                problems.append({"audio": i["audio"], "problem": "count", "spark": len(a),
                                 label: len(b)})
                continue
            oa, ob = outcome(a[0]), outcome(b[0])
            if oa != ob:
                problems.append({"audio": i["audio"], "problem": "differ", "spark": oa,
                                 label: ob})
            elif oa[0] != "ok":
                problems.append({"audio": i["audio"], "problem": "failed in both", label: oa})
            else:
                equal += 1
        for rec in bt_extra:
            problems.append({"audio": rec.get("audio"), "problem": "unknown input in output",
                             "engine": label})
        if batch_bad:
            problems.append({"problem": "unparsable lines", "engine": label,
                             "lines": len(batch_bad)})
        runs.append({"label": label, "threads": threads, "wall_s": round(batch_s, 3),
                     "cpu_s": round(cpu_s, 2), "equal": equal, "command": shlex.join(cmd),
                     "overhead_ratio": round(spark_total / batch_s, 3),
                     "job_overhead_ratio": round(job_s / batch_s, 3)})
        equal_min = min(equal_min, equal)

    print(f"{'engine':<13} {'files':>5} {'wall s':>8} {'files/s':>8} {'audio s/s':>9} "
          f"{'files/s/core':>12} {'cores used':>10}")
    for r in rows:
        used = f"{r['cores_used']:.2f}" if "cores_used" in r else "-"
        print(f"{r['engine']:<13} {r['files']:>5} {r['wall_s']:>8.2f} {r['files_per_s']:>8.3f} "
              f"{r['audio_s_per_wall_s']:>9.2f} {r['files_per_s_per_core']:>12.3f} {used:>10}")
    print(f"spark: context start {ctx_s:.2f} s, job {job_s:.2f} s, stop {stop_s:.2f} s")
    for run in runs:
        print(f"overhead ratio spark / {run['label']}: {run['overhead_ratio']:.2f} "
              f"(job alone {run['job_overhead_ratio']:.2f}); texts equal "
              f"{run['equal']}/{len(inputs)}")
    print(f"texts equal: {equal_min}/{len(inputs)}")
    for p in problems[:50]:
        print(f"MISMATCH {json.dumps(p, ensure_ascii=False)}")
    if len(problems) > 50:
        print(f"... and {len(problems) - 50} more")
    summary = {"files": len(inputs), "model": args.model, "workers": args.workers,
               "pipe": args.pipe, "cores": os.cpu_count(), "load_1m_at_start": load_start,
               "load_1m_at_end": os.getloadavg()[0],
               "spark_context_s": round(ctx_s, 3), "spark_job_s": round(job_s, 3),
               "spark_stop_s": round(stop_s, 3), "batch_runs": runs,
               "rows": rows, "equal": equal_min, "problems": problems,
               "pipe_command": shlex.join(pipe_cmd)}
    with open(os.path.join(out, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"spark: results in {out} (spark.jsonl, batch-t*/index.jsonl, summary.json)")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
