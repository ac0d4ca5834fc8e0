#!/usr/bin/env bash
# Real clients against a real `harken serve`: the `openai` and `boto3` Python packages.
#
#   tests/clients/run.sh [path/to/harken]
#
# Installs the clients into a venv under the Harken cache (idempotent), starts the server on a
# free loopback port with the tiny.en model, runs tests/clients/test_clients.py, stops the server.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cache=${HARKEN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/harken}
bin=${1:-${CARGO_TARGET_DIR:-$root/target}/release/harken}
venv="$cache/client-venv"
[[ -x "$bin" ]] || { echo "clients: no harken binary at $bin" >&2; exit 2; }
if ! "$venv/bin/python" -c "import openai, boto3, websockets" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "openai[realtime]>=1.40" "boto3>=1.34"
fi
name=clients python="$venv/bin/python"
source "$root/tests/serve.sh"
log=$serve_log
# The live-transcription audio: the numbers clip as 24 kHz 16-bit PCM and as 8 kHz G.711 µ-law.
pcm24=$(mktemp); ulaw8=$(mktemp)
sox "$root/testdata/audio/numbers_16k.wav" -r 24000 -e signed-integer -b 16 -t raw "$pcm24"
sox "$root/testdata/audio/numbers_16k.wav" -r 8000 -e mu-law -b 8 -t raw "$ulaw8"
rt() { HARKEN_URL="http://127.0.0.1:$port" HARKEN_PCM24="$pcm24" HARKEN_ULAW8="$ulaw8" HARKEN_AUDIO="$root/testdata/audio/numbers_16k.wav" "$venv/bin/python" "$root/tests/clients/test_realtime.py" "$@"; }
py() { HARKEN_URL="http://127.0.0.1:$port" HARKEN_AUDIO="$root/testdata/audio/numbers_16k.wav" "$venv/bin/python" "$root/tests/clients/test_clients.py" "$@"; }

# Open server (as behind SageMaker, where IAM authenticates): openai and boto3.
start HARKEN_API_KEY=
py
rt
# curl with raw bodies: audio in, subtitles out; a text file in, a JSON 415 out.
vtt=$(curl -sf -H 'Content-Type: audio/wav' -H 'Accept: text/vtt' --data-binary @"$root/testdata/audio/numbers_16k.wav" "http://127.0.0.1:$port/invocations")
[[ $vtt == WEBVTT* && $vtt == *Tuesday* ]] || { echo "FAIL curl raw wav -> vtt: $vtt" >&2; exit 1; }
code=$(curl -s -o "$log.body" -w '%{http_code}' -H 'Content-Type: application/octet-stream' --data-binary @"$root/README.md" "http://127.0.0.1:$port/invocations")
[[ $code == 415 ]] && grep -q '"code":"unsupported_media"' "$log.body" || { echo "FAIL curl text -> $code $(cat "$log.body")" >&2; exit 1; }
rm -f "$log.body"
echo "ok   curl raw bodies"
stop
echo "clients: server exited cleanly on SIGTERM"
# With HARKEN_API_KEY: the openai client's key is checked, and at debug level the server logs
# neither the key nor the wrong keys clients sent.
key="sk-test-$("$python" -c 'import secrets; print(secrets.token_hex(8))')"
start HARKEN_LOG=debug HARKEN_API_KEY="$key"
HARKEN_KEY="$key" py --auth
HARKEN_KEY="$key" rt --auth
stop
for secret in "$key" "${key%?}" sk-wrong-c0ffee; do
  if grep -qF -- "$secret" "$log"; then echo "FAIL the server log contains a key ($secret)" >&2; exit 1; fi
done
grep -q 'request' "$log" || { echo "FAIL the debug log is empty: the key check proves nothing" >&2; exit 1; }
echo "ok   no API key in the debug log"
rm -f "$pcm24" "$ulaw8"
