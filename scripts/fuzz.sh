#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer through cargo-fuzz, AddressSanitizer, overflow checks) of
# every parser of outside input: audio containers, the multipart form, the Realtime protocol,
# Lambda events, MLmodel, ARPA, Harken's LM binary, KenLM binaries, CMU Sphinx, the vocabulary
# trie, DeepSpeech scorers, .tflite/.pbmm models and alphabets.
#
#   scripts/fuzz.sh [--seconds N] [--jobs J] [TARGET...]   fuzz each target N s (default 30)
#   scripts/fuzz.sh --regress [TARGET...]                  replay corpora + regressions only
#   scripts/fuzz.sh --minimise [TARGET...]                 merge the corpus to its minimum
#   --no-save: new inputs go to a temporary directory, not fuzz/corpus (the test suite's run)
#
# Seeds are made from testdata/ into fuzz/seeds/ (not committed); what the fuzzer finds goes to
# fuzz/corpus/<target> (committed, minimised). A crash writes fuzz/artifacts/<target>/crash-*,
# fails the run, and — once fixed — its input belongs in fuzz/regressions/<target>/, which every
# run replays. Stable Rust builds the sanitizer flags with RUSTC_BOOTSTRAP=1 (no nightly needed).
# The sanitizer build lives in its own target directory ($HARKEN_FUZZ_TARGET).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${HARKEN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/harken}
seconds=30 jobs=2 mode=fuzz save=1
targets=()
while (($#)); do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --regress) mode=regress; shift ;;
    --minimise) mode=minimise; shift ;;
    --no-save) save=0; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz (one-time)" >&2
  cargo install cargo-fuzz --locked --version 0.13.2 >&2
fi
export RUSTC_BOOTSTRAP=1
target_dir=${HARKEN_FUZZ_TARGET:-$cache/fuzz-target}
cd "$root/fuzz"
if ((${#targets[@]} == 0)); then mapfile -t targets < <(cargo fuzz list); fi

# --- seeds ----------------------------------------------------------------------------------
seeds="$root/fuzz/seeds"
make_seeds() {
  rm -rf "$seeds"; mkdir -p "$seeds"/{audio_decode,multipart,realtime_events,lambda_event,mlmodel,arpa,lm_binary,kenlm,sphinx,trie,scorer,deepspeech_model,alphabet,batch_request}
  local t="$root/testdata"
  for f in "$t"/audio/*.{wav,mp3,ogg,flac,m4a,webm,opus}; do
    (( $(stat -c %s "$f") <= 100000 )) || continue
    { printf '\0'; cat "$f"; } >"$seeds/audio_decode/$(basename "$f")"
  done
  printf '\372\1\2\3\4' >"$seeds/audio_decode/raw-pcm16"
  local wav="$t/audio/speech_8k_u8.wav"
  part() { printf -- '--b\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' "$1" "$2"; }
  { part language en; part response_format verbose_json; part 'timestamp_granularities[]' word
    part hotwords 'Tuesday, numbers'; part vad_filter true; part vad_threshold 0.4; part stream false
    part temperature 0.2; part hallucination_silence_threshold 2
    printf -- '--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\n'
    head -c 2000 "$wav"; printf '\r\n--b--\r\n'; } >"$seeds/multipart/form"
  cat >"$seeds/realtime_events/ga" <<'EOF'
{"type":"session.update","session":{"type":"transcription","audio":{"input":{"format":{"type":"audio/pcm","rate":24000},"transcription":{"model":"whisper-1","language":"en"},"turn_detection":{"type":"server_vad","threshold":0.5,"silence_duration_ms":500}}}}}
{"type":"input_audio_buffer.append","audio":"AAABAAIAAwAEAAUA"}
{"type":"input_audio_buffer.commit","event_id":"e1"}
{"type":"input_audio_buffer.clear"}
{"type":"session.update","session":{"type":"transcription","audio":{"input":{"format":{"type":"audio/pcmu"},"turn_detection":null}}}}
{"type":"input_audio_buffer.append","audio":"/38AgH8="}
EOF
  printf '\1%s\n%s\n' '{"type":"transcription_session.update","session":{"input_audio_format":"g711_alaw","input_audio_transcription":{"model":"whisper-1","prompt":"x"},"turn_detection":{"type":"server_vad"}}}' \
    '{"type":"input_audio_buffer.append","audio":"1dXV"}' >"$seeds/realtime_events/beta"
  cp "$t"/lambda/*.json "$seeds/lambda_event/"
  printf '{"audio": "calls/a.wav", "id": "7", "language": "de", "text": "ref"}' >"$seeds/batch_request/object"
  printf 's3://bucket/in/x%%20y.mp3' >"$seeds/batch_request/bare"
  printf '{"audio": "../../etc/passwd", "id": "../up/./x"}' >"$seeds/batch_request/escape"
  printf '"quoted/path.flac"' >"$seeds/batch_request/quoted"
  cat >"$seeds/mlmodel/MLmodel" <<'EOF'
artifact_path: harken
flavors:
  python_function:
    loader_module: harken
  harken:
    format: 1
    kind: whisper
    name: whisper-tiny.en
    version: "1"
    files:
      model.bin: {sha256: 0000000000000000000000000000000000000000000000000000000000000000, bytes: 10}
      config.json: {sha256: 1111111111111111111111111111111111111111111111111111111111111111, bytes: 2}
model_uuid: 0f1e2d3c
run_id: abc
utc_time_created: '2026-01-01 00:00:00.000000'
EOF
  # A tiny ARPA model, and what Harken and KenLM make of it.
  local arpa="$seeds/arpa/tiny.arpa"
  cat >"$arpa" <<'EOF'
\data\
ngram 1=6
ngram 2=5
ngram 3=2

\1-grams:
-1.0	<unk>	0
-99	<s>	-0.5
-0.7	</s>	0
-0.6	the	-0.3
-0.9	cat	-0.2
-1.1	sat	-0.1

\2-grams:
-0.3	<s> the	-0.1
-0.4	the cat	-0.2
-0.5	cat sat	0
-0.2	sat </s>	0
-0.6	the sat	0

\3-grams:
-0.1	<s> the cat
-0.2	the cat sat

\end\
EOF
  local h="${CARGO_TARGET_DIR:-$root/target}/release/harken"
  if [[ -x $h ]]; then
    "$h" lm convert "$arpa" -o "$seeds/lm_binary/tiny.bin" >/dev/null 2>&1 || true
    "$h" lm convert "$arpa" --quantize --hash-index -o "$seeds/lm_binary/tiny-q.bin" >/dev/null 2>&1 || true
    "$h" lm trie "$arpa" -o "$seeds/trie/tiny.trie" >/dev/null 2>&1 || true
    "$h" lm convert "$arpa" -o "$seeds/scorer/tiny.scorer" >/dev/null 2>&1 || true
  fi
  local bb="$cache/kenlm/bin/build_binary"
  if [[ -x $bb ]]; then
    "$bb" -q 8 -b 8 trie "$arpa" "$seeds/kenlm/tiny.trie.klm" >/dev/null 2>&1 || true
    "$bb" probing "$arpa" "$seeds/kenlm/tiny.probing.klm" >/dev/null 2>&1 || true
  fi
  cp "$seeds"/kenlm/* "$seeds/scorer/" 2>/dev/null || true
  zcat "$t/lm/small-3gram.lm.bin.gz" >"$seeds/sphinx/small-3gram.lm.bin"
  local tfl="$cache/deepspeech/armspeech/model.tflite"
  [[ -f $tfl ]] && { printf '\0'; head -c 8192 "$tfl"; } >"$seeds/deepspeech_model/head.tflite"
  printf '\0TFL3' >"$seeds/deepspeech_model/magic"
  printf '# DeepSpeech alphabet\n \na\nb\nc\n'"'"'\n# end\n' >"$seeds/alphabet/alphabet.txt"
}

# --- run ------------------------------------------------------------------------------------
cargo fuzz build --target-dir "$target_dir" >&2
[[ $mode == fuzz ]] && make_seeds

status=0
run_one() {
  local t=$1 corpus="$root/fuzz/corpus/$1" reg="$root/fuzz/regressions/$1" art="$root/fuzz/artifacts/$1"
  mkdir -p "$corpus" "$reg" "$art"
  local log; log=$(mktemp)
  local -a dirs=("$corpus" "$reg")
  # libFuzzer writes what it finds into the first directory.
  if [[ $mode == fuzz ]] && (( ! save )); then dirs=("$(mktemp -d)" "${dirs[@]}"); fi
  local -a flags=(-rss_limit_mb=2048 -timeout=20 -max_len=262144 "-artifact_prefix=$art/")
  case $mode in
    regress) flags+=(-runs=0) ;;
    fuzz) dirs+=("$seeds/$t"); flags+=("-max_total_time=$seconds" -print_final_stats=1) ;;
  esac
  if [[ $mode == minimise ]]; then
    cargo fuzz cmin --target-dir "$target_dir" "$t" "$corpus" >"$log" 2>&1 || true
    # Large inputs stay out of the repository: they descend from the testdata seeds, which every
    # run regenerates.
    find "$corpus" -type f -size +16k -delete
    echo "fuzz: $t corpus minimised to $(ls "$corpus" | wc -l) inputs"
  elif cargo fuzz run --target-dir "$target_dir" "$t" "${dirs[@]}" -- "${flags[@]}" >"$log" 2>&1; then
    local execs cov
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo '?')
    printf 'fuzz: %-17s ok   %s s, %s runs, coverage %s edges, corpus %s\n' "$t" \
      "$([[ $mode == fuzz ]] && echo "$seconds" || echo 0)" "${execs:-?}" "$cov" "$(ls "$corpus" | wc -l)"
  else
    echo "fuzz: $t FAILED — input in $art; log tail:" >&2
    tail -40 "$log" >&2
    rm -f "$log"; return 1
  fi
  rm -f "$log"
  if [[ $mode == fuzz ]] && (( ! save )); then rm -rf "${dirs[0]}"; fi
}
pids=()
for t in "${targets[@]}"; do
  run_one "$t" & pids+=($!)
  if (( ${#pids[@]} >= jobs )); then wait "${pids[0]}" || status=1; pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]}"; do wait "$p" || status=1; done
exit $status
