#!/usr/bin/env bash
# Harken scaled out with Apache Spark in local mode: RDD.pipe over `harken batch --jsonl` workers,
# checked and timed against one `harken batch` process on the same files (bench/spark_batch.py).
#
#   bench/spark.sh [--workers 2] [--model tiny.en] [--limit N] [--harken PATH] [--out DIR]
#                  [--manifest FILE.jsonl] [--pipe pyspark|jvm] [--batch-threads 1,W]
#
# Inputs: --manifest (lines with "audio", relative to the manifest's folder), by default
# ../shared/eval/dev/manifest.jsonl beside the repo ($HARKEN_SHARED moves ../shared). --workers W
# runs local[W] with W partitions, each one `harken batch --jsonl --threads 1` process, against
# `harken batch --jobs W --threads T` for T in --batch-threads (default 1 and W: the jobs share
# the T compute threads, so T=W is Spark's core budget). Prints files/s, audio s per wall s,
# files/s per core for each and Spark's overhead ratio; exits 1 when a transcript differs or an
# input is missing.
# Results: --out DIR (default ~/.cache/harken/bench/spark-MODEL-wW). Installs pyspark once
# (scripts/install-spark.sh); needs Java 17 or 21. Every process of the run (Spark's JVM, PySpark's
# daemon, the harken workers) is stopped at the end, also on failure or Ctrl-C.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cache=${HARKEN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/harken}
shared=${HARKEN_SHARED:-$root/../shared}
bin=${HARKEN_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/harken}
workers=2 model=tiny.en limit=0 out= manifest= pipe=pyspark batch_threads=
while [[ $# -gt 0 ]]; do
  case $1 in
    --workers) workers=$2; shift 2 ;; --model) model=$2; shift 2 ;;
    --limit) limit=$2; shift 2 ;; --harken) bin=$2; shift 2 ;;
    --out) out=$2; shift 2 ;; --manifest) manifest=$2; shift 2 ;;
    --pipe) pipe=$2; shift 2 ;; --batch-threads) batch_threads=$2; shift 2 ;;
    *) sed -n '2,17p' "$0" >&2; exit 2 ;;
  esac
done
if [[ -z $manifest ]]; then
  manifest="$shared/eval/dev/manifest.jsonl"
  [[ -f $manifest ]] || { echo "spark: $manifest is missing (the eval sets live in ../shared beside the repo; or pass --manifest)" >&2; exit 2; }
fi
[[ -f $manifest ]] || { echo "spark: no manifest at $manifest" >&2; exit 2; }
[[ -x $bin ]] || { echo "spark: no harken binary at $bin (cargo build --release -p harken-cli)" >&2; exit 2; }
help=$("$bin" batch --help 2>&1 || true)
[[ $help == *--jsonl* ]] ||
  { echo "spark: $bin has no \`batch --jsonl\` worker mode (rebuild it)" >&2; exit 2; }
command -v java >/dev/null || [[ -x ${JAVA_HOME:-/nonexistent}/bin/java ]] ||
  { echo "spark: Spark needs Java 17 or 21 (apt-get install openjdk-17-jre-headless)" >&2; exit 2; }
venv=$("$root/scripts/install-spark.sh")
out=${out:-$cache/bench/spark-$model-w$workers}
mkdir -p "$out"

# Every process of the run carries this marker in its environment (the environment is passed on
# whole: HARKEN_TEST_RUN too); bench/spark_reap.py finds and stops any that outlive the run.
marker=${HARKEN_SPARK_RUN:-spark-$$-$(date +%s%N)}
pid=
reap() { env -u HARKEN_SPARK_RUN python3 "$here/spark_reap.py" "$marker" "$@"; }
cleanup() {
  if [[ -n $pid ]]; then  # interrupted: the driver's whole process group, then the stragglers
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    reap --grace 0 || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
status=0
# setsid: the driver (and the JVM it launches) in a process group of their own, killed as one.
HARKEN_SPARK_RUN=$marker setsid -w "$venv/bin/python" "$here/spark_batch.py" --harken "$bin" \
  --manifest "$manifest" --out "$out" --workers "$workers" --model "$model" --limit "$limit" \
  --pipe "$pipe" --batch-threads "$batch_threads" &
pid=$!
wait "$pid" || status=$?
# The driver has exited; Spark's JVM exits when its stdin closes. Allow it a moment, then stop
# (and count as a failure) anything of this run still alive.
if ! reap --grace 15; then
  echo "spark: processes outlived the run (stopped now)" >&2
  [[ $status -ne 0 ]] || status=1
fi
pid=
exit $status
