#!/usr/bin/env bash
# The whole test suite, as CI runs it: install models, format check, clippy, docs, all tests,
# the DeepSpeech path against the official client library, then the real openai and boto3 clients
# and a real browser (Chromium) against `harken serve` (real-model tests included; under
# CI=true a missing model fails instead of skipping).
#
#   scripts/test.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
step() { printf '\n==> %s\n' "$*" >&2; }
# Every process the suite starts inherits this marker; the last step fails on any still running.
HARKEN_TEST_RUN="$$-$(date +%s%N)"
export HARKEN_TEST_RUN

step "models"
scripts/install-models.sh all
scripts/install-deepspeech.sh >/dev/null
step "KenLM tools (build_binary, query, lmplz: the scorer and LM references)"
scripts/install-kenlm.sh >/dev/null

step "test servers (moto, MLflow)"
HARKEN_STORE_VENV=$(scripts/install-test-tools.sh)
export HARKEN_STORE_VENV

step "deployment templates (cfn-lint, hadolint, kubernetes-validate, yamllint, boto3 request validation)"
deploy/validate.sh "$HARKEN_STORE_VENV"

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo doc -D warnings"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

step "cargo test (release: the real-model tests run the optimised engine)"
cargo test --workspace --release --locked

step "DeepSpeech / Coqui STT: transcripts, features and probabilities against libdeepspeech 0.9.3"
target="${CARGO_TARGET_DIR:-$root/target}/release"
scripts/ds/check.sh "$HARKEN_STORE_VENV/bin/python" "$target/harken" "$target/examples/deepspeech_trace"

step "real clients (openai, boto3) against harken serve"
tests/clients/run.sh "${CARGO_TARGET_DIR:-$root/target}/release/harken"

step "the API against /openapi.json (openapi-spec-validator, schemathesis)"
tests/api/run.sh "${CARGO_TARGET_DIR:-$root/target}/release/harken"

step "the web page in Chromium (playwright-core): upload, playback highlighting, microphone, errors"
tests/browser/run.sh "${CARGO_TARGET_DIR:-$root/target}/release/harken"

step "Spark local mode (RDD.pipe over harken batch --jsonl): results equal harken batch's"
scripts/install-spark.sh >/dev/null
tests/spark/run.sh "${CARGO_TARGET_DIR:-$root/target}/release/harken"

step "fuzz targets: the committed corpora and every past crash, then 30 s of fuzzing each"
scripts/fuzz.sh --seconds 30 --no-save

step "soak, CI variant: 2 minutes of mixed load with bad inputs and disconnects (bench/soak.sh --ci)"
soak_out=$(mktemp -d)
bench/soak.sh --ci --duration 120 --model tiny.en --max-file 60 --out "$soak_out"
rm -rf "$soak_out"

step "no process of the suite outlives it"
env -u HARKEN_TEST_RUN python3 scripts/check-leftovers.py "$HARKEN_TEST_RUN"
