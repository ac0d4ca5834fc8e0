#!/usr/bin/env bash
# Spark local mode (RDD.pipe over `harken batch --jsonl`) against one `harken batch` process, on
# the repo's own WAV clips (no ../shared needed): every clip must come back exactly once from both
# with the same transcript (bench/spark.sh, bench/spark_batch.py). Runs PySpark's pipe and then
# the JVM's own RDD.pipe, 2 workers, tiny.en. Fails when a transcript differs or is missing, and
# when any process of the run (Spark's JVM, PySpark's daemon, a harken worker) outlives it.
#
#   tests/spark/run.sh [path/to/harken] [--limit N]      (default: all 9 WAV clips)
#
# Installs pyspark once (scripts/install-spark.sh); needs Java 17 or 21 and the tiny.en model
# (scripts/install-models.sh tiny.en). The environment is passed on whole: HARKEN_TEST_RUN reaches
# every process started here.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${CARGO_TARGET_DIR:-$root/target}/release/harken
limit=9
while [[ $# -gt 0 ]]; do
  case $1 in
    --limit) limit=$2; shift 2 ;;
    -*) sed -n '2,13p' "$0" >&2; exit 2 ;;
    *) bin=$1; shift ;;
  esac
done
[[ -x $bin ]] || { echo "spark: no harken binary at $bin" >&2; exit 2; }
clips=(speech_16k_s16.wav numbers_16k.wav speech_8k_u8.wav speech_22k_s32.wav
       speech_44k_stereo_s24.wav speech_48k_f32.wav speech_96k_s16.wav silence_2s.wav
       vad_pauses_16k.wav)
work=$(mktemp -d)
marker="spark-test-$$-$(date +%s%N)"
reap() { env -u HARKEN_SPARK_RUN python3 "$root/bench/spark_reap.py" "$marker" "$@"; }
cleanup() { reap --grace 0 >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
for clip in "${clips[@]}"; do
  python3 -c 'import json, sys; print(json.dumps({"audio": sys.argv[1], "id": sys.argv[2]}))' \
    "$root/testdata/audio/$clip" "${clip%.wav}"
done >"$work/manifest.jsonl"

for pipe in pyspark jvm; do
  echo "== spark: $pipe pipe, $limit clips, 2 workers"
  HARKEN_SPARK_RUN=$marker "$root/bench/spark.sh" --harken "$bin" --manifest "$work/manifest.jsonl" \
    --limit "$limit" --workers 2 --model tiny.en --pipe "$pipe" --out "$work/$pipe"
  # Not only equal but real: the sentence or the numbers clip must read as such.
  grep -Eqi 'lazy dog|tuesday' "$work/$pipe/spark.jsonl" ||
    { echo "FAIL spark: no transcript has 'lazy dog' or 'tuesday'" >&2; cat "$work/$pipe/spark.jsonl" >&2; exit 1; }
  if ! reap --grace 0; then echo "FAIL spark: processes of the run outlived it" >&2; exit 1; fi
done
echo "spark: Spark local mode and harken batch agree; nothing left running"
