#!/usr/bin/env bash
# The CMU Sphinx en-US trigram in its binary trie form (`.lm.bin`), as the SpeechRecognition
# 3.17.0 wheel ships it, for the Sphinx import benchmark. Checked against a pinned sha256;
# idempotent; prints the file's path.
#
#   scripts/install-sphinx-lm.sh
set -euo pipefail
cache=${HARKEN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/harken}
out="$cache/sphinx/language-model.lm.bin"
sha=4ed8f52ed0413045f0e9c65a4709953896b6ff9a99ebc10f7ef926f662c5e506
if [[ -f $out ]] && echo "$sha  $out" | sha256sum -c --quiet 2>/dev/null; then
  echo "$out"; exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps -d "$work" "SpeechRecognition==3.17.0" >&2
mkdir -p "$(dirname "$out")"
python3 - "$work"/*.whl "$out.partial" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("speech_recognition/pocketsphinx-data/en-US/language-model.lm.bin") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
echo "$sha  $out.partial" | sha256sum -c --quiet
mv "$out.partial" "$out"
echo "$out"
