#!/usr/bin/env bash
# The whole test suite, as CI runs it: install models, format check, clippy, docs, all tests,
# then the real openai and boto3 clients against `harken serve` (real-model tests included; under
# CI=true a missing model fails instead of skipping).
#
#   scripts/test.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
step() { printf '\n==> %s\n' "$*" >&2; }

step "models"
scripts/install-models.sh all

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

step "real clients (openai, boto3) against harken serve"
tests/clients/run.sh "${CARGO_TARGET_DIR:-$root/target}/release/harken"
