#!/usr/bin/env bash
# Lint every deployment template with the best tool the package registries offer; run by
# scripts/test.sh. No Docker engine, cluster or AWS account is needed (or available in CI):
#   - deploy/lambda/template.yaml      cfn-lint (understands the SAM transform)
#   - deploy/sagemaker/Dockerfile      hadolint
#   - deploy/sagemaker/create_endpoint.py   --dry-run: requests validated against botocore's
#                                      SageMaker API model (real-time and serverless)
#   - deploy/k8s/*.yaml                kubernetes-validate --strict (bundled schemas); the KServe
#                                      CRD has no bundled schema, so its container spec is
#                                      validated as a Pod
#   - all YAML                         yamllint
#
#   deploy/validate.sh [VENV]   (default: $HARKEN_STORE_VENV from scripts/install-test-tools.sh)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:-${HARKEN_STORE_VENV:?run scripts/install-test-tools.sh and export HARKEN_STORE_VENV}}
bin="$venv/bin"
cd "$root/deploy"
"$bin/cfn-lint" lambda/template.yaml
echo "ok   cfn-lint lambda/template.yaml"
"$bin/hadolint" sagemaker/Dockerfile
echo "ok   hadolint sagemaker/Dockerfile"
args=(--name asr --image 123456789012.dkr.ecr.us-east-1.amazonaws.com/harken:1
      --role arn:aws:iam::123456789012:role/SageMakerExecution --dry-run)
"$bin/python" sagemaker/create_endpoint.py "${args[@]}" --model-data s3://models/whisper-base.tar.gz >/dev/null
"$bin/python" sagemaker/create_endpoint.py "${args[@]}" --model-uri models:/asr@prod --serverless --memory-mb 3072 >/dev/null
if "$bin/python" sagemaker/create_endpoint.py "${args[@]/arn:aws:iam::123456789012:role\/SageMakerExecution/bad}" --model-uri x >/dev/null 2>&1; then
  echo "FAIL create_endpoint.py accepted an invalid role ARN" >&2; exit 1
fi
echo "ok   create_endpoint.py requests validate (real-time, serverless; bad input refused)"
"$bin/kubernetes-validate" --strict --quiet k8s/deployment.yaml k8s/service.yaml k8s/hpa.yaml
pod=$(mktemp --suffix=.yaml)
trap 'rm -f "$pod"' EXIT
"$bin/python" - k8s/kserve-inferenceservice.yaml "$pod" <<'PY'
import sys, yaml
isvc = yaml.safe_load(open(sys.argv[1]))
assert isvc["kind"] == "InferenceService", isvc["kind"]
pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": isvc["metadata"]["name"]},
       "spec": {"containers": isvc["spec"]["predictor"]["containers"]}}
yaml.safe_dump(pod, open(sys.argv[2], "w"))
PY
"$bin/kubernetes-validate" --strict --quiet "$pod"
echo "ok   kubernetes-validate k8s/ (KServe predictor checked as a Pod spec)"
"$bin/yamllint" -d "{extends: default, rules: {line-length: {max: 120}, document-start: disable}}" .
echo "ok   yamllint deploy/"
