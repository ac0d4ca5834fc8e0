#!/usr/bin/env bash
# The DeepSpeech / Coqui STT reference kit, idempotent: the official client library
# (libdeepspeech.so from the deepspeech-tflite 0.9.3 wheel, loaded through ctypes), a real
# Coqui STT model (Armenian, MIT, from the armspeech 0.1.4 source package), and the log()
# shim (scripts/ds/logtrace.c) that lets the check read the client's own features and
# probabilities. Both downloads are pinned by sha256. Prints the kit's directory on stdout:
#   <dir>/libdeepspeech.so  <dir>/armspeech/model.tflite  <dir>/logtrace.so
#
#   scripts/install-deepspeech.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${HARKEN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/harken}
dir="$cache/deepspeech"
mkdir -p "$dir/dl"
wheel=deepspeech_tflite-0.9.3-cp39-cp39-manylinux1_x86_64.whl
wheel_sha=46b76baf8ea9b5d43c2d8081b1c4a5aa5e45407016ac8365a0bc859072c4f748
sdist=armspeech-0.1.4.tar.gz
sdist_sha=29723aee9b13f59c77970b3087f10552aebaadc1ca2fba42bf81ab397c507d9f
model_sha=3b834da11f2d0a1a5079b44dd5d5da2b1955dec56474ba11b4c3793e934787bc

verified() { [[ -f "$1" ]] && echo "$2  $1" | sha256sum --check --status; }

if ! verified "$dir/libdeepspeech.so.whl" "$wheel_sha"; then
  echo "downloading the deepspeech-tflite 0.9.3 wheel (the official client library)" >&2
  rm -f "$dir/dl/$wheel"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --python-version 3.9 \
    --only-binary=:all: --platform manylinux1_x86_64 deepspeech-tflite==0.9.3 -d "$dir/dl" >&2
  verified "$dir/dl/$wheel" "$wheel_sha" || { echo "sha256 mismatch: $wheel" >&2; exit 1; }
  mv "$dir/dl/$wheel" "$dir/libdeepspeech.so.whl"
fi
if [[ ! -f "$dir/libdeepspeech.so" ]]; then
  python3 - "$dir/libdeepspeech.so.whl" "$dir/libdeepspeech.so" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2] + ".part", "wb") as out:
    out.write(z.read("deepspeech/lib/libdeepspeech.so"))
PY
  mv "$dir/libdeepspeech.so.part" "$dir/libdeepspeech.so"
fi

if ! verified "$dir/armspeech/model.tflite" "$model_sha"; then
  echo "downloading the armspeech 0.1.4 source package (a Coqui STT model, Armenian, MIT)" >&2
  rm -f "$dir/dl/$sdist"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps \
    --ignore-requires-python armspeech==0.1.4 -d "$dir/dl" >&2
  verified "$dir/dl/$sdist" "$sdist_sha" || { echo "sha256 mismatch: $sdist" >&2; exit 1; }
  mkdir -p "$dir/armspeech"
  tar -xzf "$dir/dl/$sdist" -C "$dir/dl" armspeech-0.1.4/src/model/model.tflite
  mv "$dir/dl/armspeech-0.1.4/src/model/model.tflite" "$dir/armspeech/model.tflite"
  rm -rf "$dir/dl/armspeech-0.1.4"
  verified "$dir/armspeech/model.tflite" "$model_sha" || { echo "sha256 mismatch: model.tflite" >&2; exit 1; }
fi

if [[ ! -f "$dir/logtrace.so" || "$root/scripts/ds/logtrace.c" -nt "$dir/logtrace.so" ]]; then
  if ! command -v gcc >/dev/null; then
    echo "installing gcc (Debian) for the log() shim" >&2
    { apt-get update -qq && apt-get install -y -qq gcc; } >/dev/null
  fi
  gcc -O2 -shared -fPIC -o "$dir/logtrace.so.part" "$root/scripts/ds/logtrace.c" -ldl
  mv "$dir/logtrace.so.part" "$dir/logtrace.so"
fi
echo "$dir"
