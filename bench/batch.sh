#!/usr/bin/env bash
# `harken batch` against faster-whisper over the same files at the same concurrency: files per
# second, files per second per core, audio seconds per wall second, and the ratio, min and median
# of --runs runs each (alternating, so drift on a noisy machine hits both alike).
#
#   bench/batch.sh [--model base|tiny.en] [--jobs 2] [--threads 1] [--limit N] [--runs 3]
#                  [--manifest ../shared/eval/dev/manifest.jsonl]
#
# The harken binary is $HARKEN_BIN, else ${CARGO_TARGET_DIR:-target}/release/harken; the peer
# runs from bench/setup-peer.sh's venv. Prints one JSON line per run and a summary line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
shared=${HARKEN_SHARED:-$root/../shared}
model=base jobs=2 threads=1 limit=0 runs=3 manifest="$shared/eval/dev/manifest.jsonl"
while [[ $# -gt 0 ]]; do
  case $1 in
    --model) model=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --limit) limit=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --manifest) manifest=$2; shift 2 ;;
    *) echo "batch.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[[ -f "$manifest" ]] || { echo "batch.sh: no manifest at $manifest (../shared beside the repo)" >&2; exit 2; }
bin=${HARKEN_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/harken}
[[ -x "$bin" ]] || { echo "batch.sh: no harken binary at $bin (cargo build --release)" >&2; exit 2; }
"$here/setup-peer.sh" >/dev/null
py="${HARKEN_BENCH_VENV:-$HOME/.cache/harken/bench-venv}/bin/python"
model_dir="${HARKEN_CACHE_DIR:-$HOME/.cache/harken}/models/whisper-$model"
[[ -f "$model_dir/model.bin" ]] || { echo "batch.sh: no model at $model_dir (scripts/install-models.sh)" >&2; exit 2; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# The manifest's (first --limit) lines with absolute audio paths, for both engines.
sub="$tmp/manifest.jsonl"
python3 - "$manifest" "$limit" > "$sub" <<'PY'
import json, os, sys
base = os.path.dirname(os.path.abspath(sys.argv[1]))
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for r in lines[: int(sys.argv[2]) or None]:
    print(json.dumps({"audio": os.path.join(base, r["audio"]), "id": r.get("id")}))
PY
cores=$(( jobs * threads ))
echo "batch.sh: model $model, $jobs jobs x $threads threads ($cores cores), $(wc -l < "$sub") files; kernel path: $(NO_COLOR=1 HARKEN_LOG=info "$bin" transcribe --model "$model_dir" --threads 1 "$root/testdata/audio/silence_2s.wav" 2>&1 >/dev/null | sed 's/\x1b\[[0-9;]*m//g' | grep -o 'cpu_path=[a-z0-9]*' | head -1)" >&2
for i in $(seq "$runs"); do
  rm -rf "$tmp/out"
  t0=$(date +%s.%N)
  # One process: its compute pool (--threads) is shared by its jobs, so it gets jobs x threads.
  "$bin" batch --manifest "$sub" --output "$tmp/out" --model "$model_dir" --jobs "$jobs" --threads "$cores" \
    --language en --precision int8 2>"$tmp/harken.log" || true
  t1=$(date +%s.%N)
  h=$(python3 -c "import json,sys; r=[json.loads(l) for l in open('$tmp/out/index.jsonl')]; print(json.dumps({'engine':'harken','run':$i,'files':len(r),'ok':sum(x['status']=='ok' for x in r),'wall_s':$t1-$t0,'audio_s':sum(x.get('duration') or 0 for x in r)}))")
  echo "$h"; echo "$h" >> "$tmp/runs.jsonl"
  p=$("$py" "$here/batch_peer.py" --manifest "$sub" --model-dir "$model_dir" --jobs "$jobs" --threads "$threads" --out "$tmp/peer.jsonl" | tail -1)
  p=$(python3 -c "import json; d=json.loads('$p'); d.update(engine='faster-whisper', run=$i); print(json.dumps(d))")
  echo "$p"; echo "$p" >> "$tmp/runs.jsonl"
done
python3 - "$tmp/runs.jsonl" "$cores" "$tmp/out/index.jsonl" "$tmp/peer.jsonl" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
cores = int(sys.argv[2])
def stats(engine):
    w = sorted(r["wall_s"] for r in runs if r["engine"] == engine)
    n = next(r["files"] for r in runs if r["engine"] == engine)
    a = next(r["audio_s"] for r in runs if r["engine"] == engine)
    return {"wall_min_s": round(w[0], 2), "wall_median_s": round(statistics.median(w), 2),
            "files_per_s": round(n / w[0], 3), "files_per_s_per_core": round(n / w[0] / cores, 3),
            "audio_s_per_wall_s": round(a / w[0], 2), "files": n}
h, p = stats("harken"), stats("faster-whisper")
hx = {json.loads(l)["audio"].split("/")[-1]: json.loads(l).get("text", "") for l in open(sys.argv[3])}
px = {json.loads(l)["audio"].split("/")[-1]: json.loads(l)["text"] for l in open(sys.argv[4])}
same = sum(1 for k in hx if k in px and hx[k].strip() == px[k].strip())
print(json.dumps({"harken": h, "faster_whisper": p,
                  "speedup_min": round(p["wall_min_s"] / h["wall_min_s"], 3),
                  "speedup_median": round(p["wall_median_s"] / h["wall_median_s"], 3),
                  "identical_texts": f"{same}/{len(hx)}"}))
PY
