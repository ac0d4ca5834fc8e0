#!/usr/bin/env bash
# Lint every deployment template with the best tool the package registries offer; run by
# scripts/test.sh. No Docker engine, cluster or AWS account is needed (or available in CI):
#   - deploy/lambda/template.yaml, batch.yaml   cfn-lint (understands the SAM transform)
#   - deploy/lambda/batch.yaml, s3-batch-job.json   lambda_batch_check.py: wiring cfn-lint does
#                                      not see (SQS visibility/DLQ/partial failures, S3 Batch
#                                      role); the CreateJob request against botocore's model
#   - deploy/lambda/distributed-map.asl.json   stepfunctions_check.py: design checks, cfn-lint's
#                                      States Language schema, executions in moto's interpreter
#   - deploy/sagemaker/Dockerfile      hadolint
#   - deploy/sagemaker/create_endpoint.py   --dry-run: requests validated against botocore's
#                                      SageMaker API models (real-time, serverless, async with
#                                      invoke_endpoint_async, Batch Transform)
#   - deploy/k8s/*.yaml                kubernetes-validate --strict (bundled schemas) for core
#                                      kinds; the KServe and Knative containers validated as Pods;
#                                      k8s_crd_check.py: KEDA and Knative against their vendored
#                                      CRD schemas, scaling settings of KEDA/Knative/KServe
#   - all YAML                         yamllint
#
#   deploy/validate.sh [VENV]   (default: $HARKEN_STORE_VENV from scripts/install-test-tools.sh)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:-${HARKEN_STORE_VENV:?run scripts/install-test-tools.sh and export HARKEN_STORE_VENV}}
bin="$venv/bin"
export PYTHONDONTWRITEBYTECODE=1  # the checks import each other; leave no __pycache__ in deploy/
cd "$root/deploy"
"$bin/cfn-lint" lambda/template.yaml lambda/batch.yaml
echo "ok   cfn-lint lambda/template.yaml lambda/batch.yaml"
"$bin/python" lambda_batch_check.py
"$bin/python" stepfunctions_check.py
"$bin/hadolint" sagemaker/Dockerfile
echo "ok   hadolint sagemaker/Dockerfile"
args=(--name asr --image 123456789012.dkr.ecr.us-east-1.amazonaws.com/harken:1
      --role arn:aws:iam::123456789012:role/SageMakerExecution --dry-run)
"$bin/python" sagemaker/create_endpoint.py "${args[@]}" --model-data s3://models/whisper-base.tar.gz >/dev/null
"$bin/python" sagemaker/create_endpoint.py "${args[@]}" --model-uri models:/asr@prod --serverless --memory-mb 3072 >/dev/null
"$bin/python" sagemaker/create_endpoint.py "${args[@]}" --model-uri models:/asr@prod --async \
  --output s3://out/async/ --failure-output s3://out/async-failed/ --invoke s3://audio/talk.wav >/dev/null
"$bin/python" sagemaker/create_endpoint.py "${args[@]}" --model-uri models:/asr@prod --transform \
  --input s3://audio/calls/ --output s3://out/transcripts/ --max-concurrent-transforms 4 >/dev/null
refused() {  # create_endpoint.py must refuse these arguments
  if "$bin/python" sagemaker/create_endpoint.py "$@" >/dev/null 2>&1; then
    echo "FAIL create_endpoint.py accepted: ${*: -4}" >&2; exit 1
  fi
}
refused "${args[@]/arn:aws:iam::123456789012:role\/SageMakerExecution/bad}" --model-uri x
refused "${args[@]}" --model-uri x --async --output s3://out/ --max-concurrency 0
refused "${args[@]}" --model-uri x --transform --input audio/calls --output s3://out/
echo "ok   create_endpoint.py requests validate (real-time, serverless, async, transform; bad input refused)"
"$bin/kubernetes-validate" --strict --quiet k8s/deployment.yaml k8s/service.yaml k8s/hpa.yaml
pods=$(mktemp --suffix=.yaml)
trap 'rm -f "$pods"' EXIT
"$bin/python" - k8s/kserve-inferenceservice.yaml k8s/knative-service.yaml "$pods" <<'PY'
import sys, yaml
isvc = yaml.safe_load(open(sys.argv[1]))
ksvc = yaml.safe_load(open(sys.argv[2]))
assert isvc["kind"] == "InferenceService" and ksvc["kind"] == "Service", (isvc["kind"], ksvc["kind"])
for c in ksvc["spec"]["template"]["spec"]["containers"]:  # Knative fills in the probes' port
    for probe in ("readinessProbe", "livenessProbe"):
        c.get(probe, {}).get("httpGet", {}).setdefault("port", c["ports"][0]["containerPort"])
pods = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": containers}}
        for name, containers in (("kserve", isvc["spec"]["predictor"]["containers"]),
                                 ("knative", ksvc["spec"]["template"]["spec"]["containers"]))]
yaml.safe_dump_all(pods, open(sys.argv[3], "w"))
PY
"$bin/kubernetes-validate" --strict --quiet "$pods"
echo "ok   kubernetes-validate k8s/ (KServe predictor and Knative containers checked as Pod specs)"
"$bin/python" k8s_crd_check.py
"$bin/yamllint" -d "{extends: default, rules: {line-length: {max: 120}, document-start: disable}}" .
echo "ok   yamllint deploy/"
