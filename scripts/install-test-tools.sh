#!/usr/bin/env bash
# Real servers the tests run against: moto (an S3-protocol server), MLflow's tracking server +
# model registry, cfn-lint (comes with moto[server]) and cargo-lambda's Runtime API emulator. Installed once into a venv under the Harken cache; re-running
# is a no-op when both import. Prints the venv path on stdout.
#
#   scripts/install-test-tools.sh
set -euo pipefail
cache=${HARKEN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/harken}
venv="$cache/store-venv"
if ! "$venv/bin/python" -c "import moto, boto3, mlflow, flask" 2>/dev/null; then
  echo "installing moto[server], boto3 and mlflow into $venv (one-time, several minutes)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "moto[server]>=5.1,<6" "boto3>=1.34" "mlflow>=3.1,<4"
fi
if ! [[ -x "$venv/bin/cargo-lambda" ]]; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check "cargo-lambda>=1.8"
fi
[[ -x "$venv/bin/moto_server" && -x "$venv/bin/mlflow" && -x "$venv/bin/cargo-lambda" && -x "$venv/bin/cfn-lint" ]] || { echo "store-venv is incomplete: $venv" >&2; exit 1; }
echo "$venv"
