#!/usr/bin/env bash
# Peak RSS while loading a model, against the packages issue's budget: weights + 150 MB.
#
#   bench/load-rss.sh [MODEL...]   (default: base tiny.en; installed names, dirs or URIs)
#
# Starts `harken serve`, waits for /ping (the model is loaded before the socket opens), reads
# VmHWM (peak RSS), VmRSS (resident after loading) and its file-backed / anonymous split from
# /proc, then stops the server.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${HARKEN_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/harken}
cache=${HARKEN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/harken}
models=("$@"); [[ ${#models[@]} -gt 0 ]] || models=(base tiny.en)
printf '%-10s %-9s %12s %12s %12s %12s %12s %10s %s\n' model precision weights_MB peak_MB rss_MB file_MB anon_MB budget_MB verdict
for m in "${models[@]}"; do
  dir=$m; [[ -d $dir ]] || dir="$cache/models/whisper-$m"
  w=$(stat -c %s "$dir"/model.bin 2>/dev/null || stat -c %s "$dir"/model.safetensors)
  for prec in f32 int8; do
    port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
    "$bin" serve --host 127.0.0.1 --port "$port" --model "$m" --precision "$prec" --workers 1 >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/ping" >/dev/null && break; sleep 0.1; done
    hwm=$(awk '/VmHWM/{print $2}' /proc/$pid/status)
    rss=$(awk '/VmRSS/{print $2}' /proc/$pid/status)
    file=$(awk '/RssFile/{print $2}' /proc/$pid/status)
    anon=$(awk '/RssAnon/{print $2}' /proc/$pid/status)
    kill $pid; wait $pid || true
    python3 - "$m" "$prec" "$w" "$hwm" "$rss" "$file" "$anon" <<'PY'
import sys
m, prec, w, hwm, rss, file, anon = sys.argv[1], sys.argv[2], int(sys.argv[3]), *map(int, sys.argv[4:])
mb = 1e6
budget = w / mb + 150
peak = hwm * 1024 / mb
print(f"{m:<10} {prec:<9} {w/mb:12.1f} {peak:12.1f} {rss*1024/mb:12.1f} {file*1024/mb:12.1f} {anon*1024/mb:12.1f} {budget:10.1f} {'ok' if peak <= budget else 'OVER by %.0f MB' % (peak - budget)}")
PY
  done
done
