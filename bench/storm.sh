#!/usr/bin/env bash
# Throughput under a retry storm: does refusing work cost the work being done?
#
#   bench/storm.sh [--duration 60] [--workers 2] [--queue 2] [--model tiny.en] [--factor 10]
#
# 1. Unloaded: WORKERS closed-loop clients (hey) POST a real clip to /invocations for DURATION s:
#    transcriptions per second — the useful throughput.
# 2. Storm: FACTOR x (WORKERS + QUEUE) hey clients, which ignore Retry-After and send again the
#    moment they are refused: transcriptions per second again (200s only), 503s per second, and
#    the ratio to (1). Target: ratio >= 0.85.
# 3. Polite storm: the same number of clients honouring Retry-After (bench/storm_client.py):
#    every request must end in 200 (none lost), and the throughput.
# Each phase on a fresh server; the server's CPU seconds (utime + stime) are reported per phase.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin=${HARKEN_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/harken}
duration=60 workers=2 queue=2 model=tiny.en factor=10
while [[ $# -gt 0 ]]; do
  case $1 in
    --duration) duration=$2; shift 2 ;; --workers) workers=$2; shift 2 ;;
    --queue) queue=$2; shift 2 ;; --model) model=$2; shift 2 ;; --factor) factor=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "usage: $0 [--duration S] [--workers N] [--queue N] [--model M] [--factor F] [-- serve flags]" >&2; exit 2 ;;
  esac
done
extra=("$@")
clip="$root/testdata/audio/numbers_16k.wav"
[[ -x $bin ]] || { echo "storm: no harken binary at $bin" >&2; exit 2; }
command -v hey >/dev/null || { apt-get update -qq && apt-get install -y -qq hey; } >/dev/null
threads=$(nproc)
port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
log=$(mktemp); out=$(mktemp); pid=
cleanup() { if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; fi; rm -f "$log" "$out"; }
trap cleanup EXIT
start() {
  "$bin" serve --host 127.0.0.1 --port "$port" --model "$model" --workers "$workers" --queue "$queue" \
    --threads "$threads" "${extra[@]}" >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 150); do curl -sf "http://127.0.0.1:$port/ping" >/dev/null && break; sleep 0.2; done
  curl -sf -H 'Content-Type: audio/wav' --data-binary @"$clip" "http://127.0.0.1:$port/invocations" >/dev/null
}
cpu() { awk '{print ($14 + $15) / 100}' "/proc/$pid/stat"; }
stop() { kill -TERM "$pid"; wait "$pid"; pid=; }
codes() { # hey output -> "ok refused other"
  python3 - "$1" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
c = {k: int(v) for k, v in re.findall(r"\[(\d+)\]\s+(\d+) responses", t)}
errs = sum(int(n) for n in re.findall(r"^\s+\[(\d+)\]\s+(?:Get|Post)", t, re.M))
print(c.get("200", 0), c.get("503", 0), sum(v for k, v in c.items() if k not in ("200", "503")) + errs)
PY
}
url="http://127.0.0.1:$port/invocations"
storm=$((factor * (workers + queue)))
echo "storm: model $model, $workers workers, queue $queue, clip 3.2 s, ${duration} s per phase, serve flags: ${extra[*]:-(defaults)}"

start; c0=$(cpu)
hey -z "${duration}s" -c "$workers" -m POST -T audio/wav -D "$clip" "$url" >"$out"
read -r ok0 _ other0 < <(codes "$out"); c1=$(cpu); stop
base=$(python3 -c "print(f'{$ok0 / $duration:.3f}')")
echo "unloaded: $ok0 transcriptions in ${duration} s = $base /s; other statuses $other0; server CPU $(python3 -c "print(f'{$c1 - $c0:.1f}')") s"

start; c0=$(cpu)
hey -z "${duration}s" -c "$storm" -m POST -T audio/wav -D "$clip" "$url" >"$out"
read -r ok1 refused1 other1 < <(codes "$out"); c1=$(cpu); stop
python3 - "$ok1" "$refused1" "$other1" "$duration" "$base" "$storm" "$(python3 -c "print($c1 - $c0)")" <<'PY'
import sys
ok, refused, other, d, base, n, cpu = (float(x) for x in sys.argv[1:])
rate = ok / d
print(f"storm ({int(n)} clients ignoring Retry-After): {int(ok)} transcriptions = {rate:.3f} /s, "
      f"{refused / d:.0f} refusals/s, other {int(other)}; server CPU {cpu:.1f} s; "
      f"throughput ratio {rate / base:.2f} (target >= 0.85: {'met' if rate / base >= 0.85 else 'MISSED'})")
PY

start; c0=$(cpu)
python3 "$here/storm_client.py" --url "$url" --clip "$clip" --clients "$storm" --duration "$duration" --base "$base"
c1=$(cpu); stop
echo "polite storm: server CPU $(python3 -c "print(f'{$c1 - $c0:.1f}')") s"
