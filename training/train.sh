#!/usr/bin/env bash
# Reproduce Harken's English CTC head (models/ctc-en/head.safetensors) from nothing but
# registry packages: TTS engines render the training text, Whisper base encodes it, and
# harken-train fits the head. About 1 h 15 min on 2 cores (see training/README.md).
#
#   training/train.sh [SENTENCES]        (default 6000 training sentences, 300 validation)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${HARKEN_CACHE_DIR:-$HOME/.cache/harken}
work=${WORK:-$cache/train}
n=${1:-6000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$cache/target}
mkdir -p "$work"

# Tools: Debian TTS engines and sox; a venv with numpy and hibari-tts.
need=()
for p in espeak-ng flite festival festvox-kallpc16k festvox-us-slt-hts sox fortunes; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if ((${#need[@]})); then apt-get install -y -q "${need[@]}"; fi
venv=$cache/train-venv
[[ -x $venv/bin/python ]] || python3 -m venv "$venv"
"$venv/bin/python" -c "import numpy, hibari" 2>/dev/null || "$venv/bin/pip" install -q numpy hibari-tts==0.2.1

"$root/scripts/install-models.sh" base
whisper=$cache/models/whisper-base/model.bin
(cd "$root" && cargo build --release --locked -p harken-train)
T=$CARGO_TARGET_DIR/release/harken-train

shared=${HARKEN_SHARED:-$root/../shared}
python3 "$root/training/make_text.py" --shared "$shared" --lm "$shared/lm/en-us-sphinx-3gram.arpa.gz" --out "$work/text.tsv"
[[ -f $work/data/train/manifest.jsonl ]] || "$venv/bin/python" "$root/training/synth.py" --text "$work/text.tsv" --out "$work/data/train" --sentences "$n" --seed 1
[[ -f $work/data/valid/manifest.jsonl ]] || "$venv/bin/python" "$root/training/synth.py" --text "$work/text.tsv" --out "$work/data/valid" --skip "$n" --sentences 300 --seed 2
[[ -f $work/feats/train/width ]] || "$T" features "$work/data/train/manifest.jsonl" --whisper "$whisper" --out "$work/feats/train"
[[ -f $work/feats/valid/width ]] || "$T" features "$work/data/valid/manifest.jsonl" --whisper "$whisper" --out "$work/feats/valid"
"$T" fit --train "$work/feats/train" --valid "$work/feats/valid" --whisper "$whisper" \
  --out "$work/acoustic.safetensors" --hidden 1024,1024 --epochs 8 --lr 1.5e-3 --dropout 0.1 ${FIT_ARGS:-}
echo "head: $work/acoustic.head.safetensors (copy to models/ctc-en/head.safetensors); log: $work/acoustic.log.json"
