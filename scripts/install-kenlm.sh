#!/usr/bin/env bash
# KenLM's command-line tools (lmplz, build_binary, query) for the LM benchmarks: built from the
# PyPI `kenlm` source package with Debian's cmake, Boost and Eigen. Idempotent; prints the bin dir.
#
#   scripts/install-kenlm.sh
set -euo pipefail
cache=${HARKEN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/harken}
dir="$cache/kenlm"
if [[ -x "$dir/bin/query" && -x "$dir/bin/build_binary" && -x "$dir/bin/lmplz" ]]; then
  echo "$dir/bin"; exit 0
fi
echo "building KenLM tools into $dir (one-time, about 5 minutes)" >&2
if ! dpkg -s libboost-program-options-dev libboost-system-dev libboost-thread-dev libboost-test-dev libeigen3-dev cmake >/dev/null 2>&1; then
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q cmake libboost-program-options-dev \
    libboost-system-dev libboost-thread-dev libboost-test-dev libeigen3-dev >&2
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps --no-binary :none: -d "$work" "kenlm==0.3.0" >&2 || python3 -m pip download --quiet --no-deps -d "$work" kenlm >&2
tar xzf "$work"/kenlm-*.tar.gz -C "$work"
src=$(find "$work" -maxdepth 1 -type d -name 'kenlm-*' | head -1)
mkdir -p "$src/build" "$dir/bin"
(cd "$src/build" && cmake .. -DCMAKE_BUILD_TYPE=Release >&2 && make -j2 lmplz build_binary query >&2)
cp "$src/build/bin/lmplz" "$src/build/bin/build_binary" "$src/build/bin/query" "$dir/bin/"
echo "$dir/bin"
