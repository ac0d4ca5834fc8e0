#!/usr/bin/env bash
# WER table of the DeepSpeech-style pipeline against Whisper base, on ../shared/eval.
#
#   bench/ctc/wer.sh [HEAD]        (HEAD: a ctc_head safetensors; default models/ctc-en/head.safetensors)
#
# Builds the LM size ladder from the shared trigram (full, 1/4, 1/16, 1/64 of its binary size by
# Stolcke pruning), assembles a CTC package (Whisper base encoder + HEAD + alphabet + full LM +
# vocabulary trie), computes CTC posteriors once per utterance and decodes them under every
# configuration (harken-train eval), runs Whisper base alone and with LM fusion, and prints one
# table (bench/ctc/wer.py). Also times pyctcdecode (with the kenlm module) on the same posteriors,
# LM and beam. Tune alpha/beta on dev only (harken lm tune); real is reported, never tuned on.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
shared=${HARKEN_SHARED:-$root/../shared}
[[ -d "$shared/eval" ]] || { echo "bench/ctc/wer.sh: needs ../shared (eval sets and the trigram LM); not found at $shared" >&2; exit 2; }
cache=${HARKEN_CACHE_DIR:-$HOME/.cache/harken}
work=${WORK:-$cache/bench/ctc}
head=${1:-$root/models/ctc-en/head.safetensors}
alpha=${ALPHA:-} beta=${BETA:-}
beam=${BEAM:-32}
mkdir -p "$work"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$cache/target}
( cd "$root" && cargo build --release --locked -p harken-cli -p harken-train >&2 )
H=$CARGO_TARGET_DIR/release/harken T=$CARGO_TARGET_DIR/release/harken-train
"$root/scripts/install-models.sh" base >&2
whisper=$cache/models/whisper-base

# LM ladder (skipped when present).
lm=$work/lm; mkdir -p "$lm"
[[ -f $lm/full.bin ]] || "$H" lm convert "$shared/lm/en-us-sphinx-3gram.arpa.gz" -o "$lm/full.bin" >&2
[[ -f $lm/vocab.trie ]] || "$H" lm trie "$lm/full.bin" -o "$lm/vocab.trie" >&2
[[ -f $lm/full.arpa ]] || "$H" lm convert "$lm/full.bin" -o "$lm/full.arpa" >&2   # for KenLM
full=$(stat -c %s "$lm/full.bin")
for d in 4 16 64; do
  [[ -f $lm/q$d.bin || -f $lm/q$d.unreachable ]] && continue
  if ! "$H" lm prune "$lm/full.bin" --max-bytes $((full / d)) -o "$lm/q$d.bin" >&2 2>"$lm/q$d.err"; then
    # The budget is below the unigrams + indexes: record it and try 8-bit quantization.
    "$H" lm prune "$lm/full.bin" --max-bytes $((full / d)) --quantize -o "$lm/q$d.bin" >&2 2>>"$lm/q$d.err" || touch "$lm/q$d.unreachable"
  fi
done

# The package.
pkg=$work/pkg src=$work/src
rm -rf "$src" "$pkg"; mkdir -p "$src"
"$T" export --head "$head" --whisper "$whisper/model.bin" --out "$src/acoustic.safetensors" >&2
cp "$root/models/ctc-en/alphabet.txt" "$src/alphabet.txt"
ln -s "$lm/full.bin" "$src/lm.bin"; ln -s "$lm/vocab.trie" "$src/vocab.trie"
printf '{"package":"whisper-base","weights_sha256":"%s"}\n' "$(sha256sum "$whisper/model.bin" | cut -d' ' -f1)" > "$src/encoder.json"
"$H" model pack "$src" -o "$pkg" --name harken-ctc-en ${alpha:+--lm-alpha $alpha} ${beta:+--lm-beta $beta} --beam "$beam" >&2

# Manifests with absolute audio paths; real keeps referenced clips only.
python3 - "$shared" "$work" <<'PY'
import json, os, sys
shared, work = sys.argv[1:]
for name in ("dev", "real"):
    d = os.path.join(shared, "eval", name)
    with open(os.path.join(work, f"{name}.jsonl"), "w") as out:
        for line in open(os.path.join(d, "manifest.jsonl")):
            m = json.loads(line)
            if m.get("text"):
                out.write(json.dumps({"audio": os.path.join(d, m["audio"]), "text": m["text"]}) + "\n")
PY

if [[ -z $alpha ]]; then
  # Tune on dev only; the package keeps the result.
  "$H" lm tune "$pkg" --manifest "$work/dev.jsonl" --beam "$beam" --write | tee "$work/tune.txt" >&2
  alpha=$(awk '/^best:/{print $3}' "$work/tune.txt"); beta=$(awk '/^best:/{sub(":", "", $5); print $5}' "$work/tune.txt")
fi
echo "alpha=$alpha beta=$beta beam=$beam" >&2

configs=(
  "greedy=beam:1"
  "beam-no-lm=beam:$beam"
  "beam-trie-only=beam:$beam,trie:$lm/vocab.trie"
  "lm-full=beam:$beam,lm:$lm/full.bin,trie:$lm/vocab.trie,alpha:$alpha,beta:$beta"
  "lm-full-no-trie=beam:$beam,lm:$lm/full.bin,alpha:$alpha,beta:$beta"
)
for d in 4 16 64; do
  [[ -f $lm/q$d.bin ]] && configs+=("lm-1/$d=beam:$beam,lm:$lm/q$d.bin,trie:$lm/vocab.trie,alpha:$alpha,beta:$beta")
done
for set in dev real; do
  "$T" eval --package "$pkg" --manifest "$work/$set.jsonl" --cache "$work/post-$set" --out "$work/ctc-$set.jsonl" \
    $(printf -- '--config %s ' "${configs[@]}") >&2
done

# Whisper base alone and with LM fusion (same beam 5 as the defaults, language en).
for set in dev real; do
  for mode in whisper whisper-lm; do
    out=$work/$mode-$set
    # Whisper does not depend on the CTC head: reuse a complete earlier run (REDO_WHISPER=1 redoes it).
    if [[ -z ${REDO_WHISPER:-} && -d $out && $(ls "$out" | wc -l) -ge $(wc -l < "$work/$set.jsonl") ]]; then continue; fi
    rm -rf "$out"; mkdir -p "$out"
    extra=(); [[ $mode == whisper-lm ]] && extra=(--whisper-lm "$lm/full.bin" --lm-alpha "${WHISPER_ALPHA:-0.1}" --lm-beta "${WHISPER_BETA:-0.5}")
    start=$(date +%s.%N)
    python3 -c 'import json,sys; [print(json.loads(l)["audio"]) for l in open(sys.argv[1])]' "$work/$set.jsonl" \
      | xargs -d '\n' "$H" transcribe --language en -f json -o "$out" "${extra[@]}" >/dev/null 2>"$out.log" || true
    echo "$mode $set $(echo "$(date +%s.%N) - $start" | bc) s" >&2
  done
done

python3 "$root/bench/ctc/wer.py" --shared "$shared" --work "$work"

# Same posteriors, LM, alpha/beta and beam through pyctcdecode (its own venv: it pins numpy).
venv=$cache/ctc-venv
[[ -x $venv/bin/python ]] || python3 -m venv "$venv"
"$venv/bin/python" -c "import pyctcdecode, kenlm" 2>/dev/null || "$venv/bin/pip" install -q pyctcdecode==0.5.0 kenlm
"$venv/bin/python" "$root/bench/ctc/pyctcdecode_compare.py" --shared "$shared" --work "$work" \
  --alpha "$alpha" --beta "$beta" --beam "$beam" --harken-train "$T" --package "$pkg"
