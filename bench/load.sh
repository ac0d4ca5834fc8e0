#!/usr/bin/env bash
# Load and overload of `harken serve` with a real load generator (hey, from Debian).
#
#   bench/load.sh [--duration 60] [--clients 4] [--workers 2] [--model base]
#
# 1. Sustained: CLIENTS concurrent clients POST a real eval clip to /invocations for DURATION s:
#    throughput (audio s per wall s), p50/p95/p99 latency, status codes, RSS at start and end.
# 2. Overload at 4x the workers with a queue of one per worker, for DURATION/2 s, while a probe
#    times GET /ping: 503s beyond capacity only, no crash, RSS, /ping latency.
# 3. Baseline: `harken bench` on the same clip, one process back to back, same threads: the
#    throughput the server is compared with.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
shared=${HARKEN_SHARED:-$here/../../shared}
bin=${HARKEN_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/harken/target}/release/harken}
duration=60 clients=4 workers=2 model=base
while [[ $# -gt 0 ]]; do
  case $1 in
    --duration) duration=$2; shift 2 ;; --clients) clients=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;; --model) model=$2; shift 2 ;;
    *) echo "usage: $0 [--duration S] [--clients N] [--workers N] [--model M]" >&2; exit 2 ;;
  esac
done
clip="$shared/eval/real/audio/mv_beckett.wav"
[[ -f $clip ]] || { echo "load: $clip missing (../shared beside the repo)" >&2; exit 2; }
[[ -x $bin ]] || { echo "load: no harken binary at $bin" >&2; exit 2; }
command -v hey >/dev/null || { apt-get update -qq && apt-get install -y -qq hey; } >/dev/null
clip_s=$(python3 -c "import wave,sys; w=wave.open(sys.argv[1]); print(w.getnframes()/w.getframerate())" "$clip")
threads=$(nproc)
port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
log=$(mktemp); pid=
cleanup() { if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; fi; rm -f "$log"; }
trap cleanup EXIT
start() { # queue
  "$bin" serve --host 127.0.0.1 --port "$port" --model "$model" --workers "$workers" --queue "$1" \
    --threads "$threads" >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 150); do curl -sf "http://127.0.0.1:$port/ping" >/dev/null && break; sleep 0.2; done
  curl -sf -H 'Content-Type: audio/wav' --data-binary @"$clip" "http://127.0.0.1:$port/invocations" >/dev/null
}
rss() { awk '/VmRSS/ {print $2/1024}' "/proc/$pid/status"; }
stop() { kill -TERM "$pid"; wait "$pid"; pid=; }
summary() { # hey output file, label
  python3 - "$1" "$2" "$clip_s" <<'PY'
import re, sys
text = open(sys.argv[1]).read(); label = sys.argv[2]; clip = float(sys.argv[3])
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
pct = dict(re.findall(r"\s(\d+)%+ in ([\d.]+) secs", text))
codes = dict(re.findall(r"\[(\d+)\]\s+(\d+) responses", text))
ok = int(codes.get("200", 0))
total = sum(int(v) for v in codes.values())
errors = re.search(r"Error distribution:(.*)", text, re.S)
print(f"{label}: {rps:.2f} req/s; audio throughput (200s only) {rps * ok / max(total, 1) * clip:.2f} audio s/s; "
      f"latency p50 {pct.get('50','?')} s, p95 {pct.get('95','?')} s, p99 {pct.get('99','?')} s; status {codes}"
      + ("; transport errors present" if errors else ""))
PY
}
out=$(mktemp)

echo "load: sustained, $clients clients x ${duration}s, $workers workers, clip ${clip_s}s, model $model"
start 16
rss0=$(rss)
hey -z "${duration}s" -c "$clients" -m POST -T audio/wav -D "$clip" "http://127.0.0.1:$port/invocations" >"$out"
rss1=$(rss)
summary "$out" "sustained"
echo "sustained: RSS start ${rss0} MiB, end ${rss1} MiB"
stop

over=$((workers * 4)); half=$((duration / 2))
echo "load: overload, $over clients x ${half}s, queue $workers"
start "$workers"
rss0=$(rss)
( for _ in $(seq $((half * 4))); do curl -s -o /dev/null -w "%{time_total}\n" "http://127.0.0.1:$port/ping"; sleep 0.25; done ) >"$out.ping" &
probe=$!
hey -z "${half}s" -c "$over" -m POST -T audio/wav -D "$clip" "http://127.0.0.1:$port/invocations" >"$out"
wait $probe || true
rss1=$(rss)
summary "$out" "overload"
python3 - "$out.ping" <<'PY'
import sys
t = sorted(float(x) for x in open(sys.argv[1]) if x.strip())
print(f"overload: /ping n={len(t)} median {t[len(t)//2]*1000:.1f} ms, max {t[-1]*1000:.1f} ms")
PY
echo "overload: RSS start ${rss0} MiB, end ${rss1} MiB; server alive: $(kill -0 $pid && echo yes)"
stop

echo "load: baseline, harken bench back to back ($threads threads)"
"$bin" bench --model "$model" --threads "$threads" --runs 5 --json "$clip" | python3 -c "
import json, sys
d = json.load(sys.stdin)['files'][0]
print(f\"baseline: median {d['median_seconds']:.3f} s per clip -> {d['audio_seconds']/d['median_seconds']:.2f} audio s/s\")"
rm -f "$out" "$out.ping"
