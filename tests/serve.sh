# Sourced by the test scripts that drive a real `harken serve` (tests/clients, tests/api):
# `start [VAR=value...]` runs the server with the tiny.en model on a free loopback port (sets
# $port and $pid) and waits for /ping; `stop` sends SIGTERM and fails the run unless harken
# exits 0 after its graceful shutdown. An EXIT trap kills a server still running and removes the
# log. Needs $bin (the harken binary), $python (for a free port) and $name (log prefix).
serve_log=$(mktemp)
pid=
start() { # extra env for the server...
  port=$("$python" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
  env "$@" "$bin" serve --host 127.0.0.1 --port "$port" --model tiny.en --workers 1 --threads 2 >"$serve_log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/ping" >/dev/null && return 0
    kill -0 $pid 2>/dev/null || { cat "$serve_log" >&2; exit 1; }
    sleep 0.2
  done
  echo "$name: server did not answer /ping" >&2; exit 1
}
stop() {
  kill -TERM "$pid"
  wait "$pid"   # harken exits 0 after a graceful shutdown; anything else fails the run
  pid=
}
serve_cleanup() {
  if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; fi
  rm -f "$serve_log"
}
trap serve_cleanup EXIT
