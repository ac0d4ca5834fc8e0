#!/usr/bin/env python3
"""Serve Harken on SageMaker: a model plus an endpoint (real-time, serverless or asynchronous),
or a Batch Transform job over an S3 prefix.

Real-time (always-on instances):
    create_endpoint.py --name asr --image ACCOUNT.dkr.ecr.REGION.amazonaws.com/harken:1 \
        --role arn:aws:iam::ACCOUNT:role/SageMakerRole --model-data s3://bucket/whisper-base.tar.gz \
        --instance-type ml.m5.large --instance-count 1

Serverless (pay per request; 1-6 GB memory, 4 MB payloads, 60 s):
    create_endpoint.py ... --serverless --memory-mb 3072 --max-concurrency 5

Asynchronous (requests queue on the endpoint; input and result in S3, up to 1 GB and 1 hour each):
    create_endpoint.py ... --async --output s3://bucket/async/out/ --failure-output s3://bucket/async/failed/ \
        [--invoke s3://bucket/audio/talk.wav]

Batch Transform (a job: every object under --input, one result per input under --output):
    create_endpoint.py ... --transform --input s3://bucket/audio/ --output s3://bucket/transcripts/ \
        [--max-concurrent-transforms 4] [--batch-errors record|fail]

The model is either a SageMaker `model.tar.gz` (--model-data, unpacked at /opt/ml/model, where
`harken serve` looks) or any Harken model URI (--model-uri s3://…/pkg, models:/asr@prod), passed
as HARKEN_MODEL_URI so model versions change without a new image.

--dry-run prints the requests after validating them against the SageMaker (and SageMaker Runtime)
API models that ship with botocore, without calling AWS (what CI runs).
"""
import argparse
import json
import sys

import boto3
from botocore.validate import ParamValidator

# Batch Transform's limits for one record (SINGLE_RECORD: one audio file) and one invocation
# (Async Inference's too); Async Inference takes inputs up to 1 GB.
MAX_PAYLOAD_MB = 100
MAX_INVOCATION_S = 3600
MAX_ASYNC_BYTES = 1 << 30


def requests(a):
    """The API calls, in order: (service, method, operation, params)."""
    env = {"HARKEN_LOG": "info"}
    if a.model_uri:
        env["HARKEN_MODEL_URI"] = a.model_uri
    if a.precision:
        env["HARKEN_PRECISION"] = a.precision
    if a.transform or a.async_:
        # harken serve stops a request at 600 s by default; SageMaker waits up to an hour here.
        env["HARKEN_TIMEOUT_SECONDS"] = str(MAX_INVOCATION_S)
    if a.async_:
        # The body limit (25 MB by default) up to Async Inference's 1 GB; under SAGEMAKER_BATCH
        # the server raises it to MaxPayloadInMB itself.
        env["HARKEN_MAX_BODY_BYTES"] = str(MAX_ASYNC_BYTES)
    container = {"Image": a.image, "Environment": env}
    if a.model_data:
        container["ModelDataUrl"] = a.model_data
    model = {"ModelName": f"{a.name}-model", "ExecutionRoleArn": a.role, "PrimaryContainer": container}
    reqs = [("sagemaker", "create_model", "CreateModel", model)]
    if a.transform:
        job = {
            "TransformJobName": a.job_name or f"{a.name}-transform",
            "ModelName": model["ModelName"],
            # One audio file per request; SageMaker's largest record is 100 MB.
            "BatchStrategy": "SINGLE_RECORD",
            "MaxPayloadInMB": MAX_PAYLOAD_MB,
            # Under SAGEMAKER_BATCH, `harken serve` answers a bad file with 200 and a JSON error
            # body (record) so one corrupt file does not fail the job; fail returns the 4xx.
            "Environment": {"SAGEMAKER_BATCH": "true", "HARKEN_BATCH_ERRORS": a.batch_errors},
            "ModelClientConfig": {"InvocationsTimeoutInSeconds": MAX_INVOCATION_S, "InvocationsMaxRetries": 1},
            "TransformInput": {
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": a.input}},
                "ContentType": "application/octet-stream",
                "CompressionType": "None",
                # Audio is binary: never split a file into records.
                "SplitType": "None",
            },
            "TransformOutput": {"S3OutputPath": a.output, "Accept": "application/json", "AssembleWith": "None"},
            "TransformResources": {"InstanceType": a.instance_type, "InstanceCount": a.instance_count},
            # Identity filters: input and output filters apply to JSON/CSV records, not audio.
            "DataProcessing": {"InputFilter": "$", "OutputFilter": "$", "JoinSource": "None"},
        }
        if a.max_concurrent_transforms:
            # Unset, SageMaker asks the container: GET /execution-parameters (harken's workers).
            job["MaxConcurrentTransforms"] = a.max_concurrent_transforms
        return reqs + [("sagemaker", "create_transform_job", "CreateTransformJob", job)]
    variant = {"VariantName": "AllTraffic", "ModelName": model["ModelName"]}
    if a.serverless:
        variant["ServerlessConfig"] = {"MemorySizeInMB": a.memory_mb, "MaxConcurrency": a.max_concurrency}
    else:
        variant.update({"InstanceType": a.instance_type, "InitialInstanceCount": a.instance_count,
                        "ContainerStartupHealthCheckTimeoutInSeconds": 600})
    config = {"EndpointConfigName": f"{a.name}-config", "ProductionVariants": [variant]}
    if a.async_:
        output = {"S3OutputPath": a.output}
        if a.failure_output:
            output["S3FailurePath"] = a.failure_output
        config["AsyncInferenceConfig"] = {
            "OutputConfig": output,
            # Requests one instance works on at once; the rest wait in the endpoint's queue.
            "ClientConfig": {"MaxConcurrentInvocationsPerInstance": a.max_concurrency},
        }
    endpoint = {"EndpointName": a.name, "EndpointConfigName": config["EndpointConfigName"]}
    reqs += [("sagemaker", "create_endpoint_config", "CreateEndpointConfig", config),
             ("sagemaker", "create_endpoint", "CreateEndpoint", endpoint)]
    if a.invoke:
        reqs.append(("sagemaker-runtime", "invoke_endpoint_async", "InvokeEndpointAsync", {
            "EndpointName": a.name, "InputLocation": a.invoke, "ContentType": "application/octet-stream",
            "Accept": "application/json", "InvocationTimeoutSeconds": MAX_INVOCATION_S}))
    return reqs


def limits(reqs):
    """Service limits botocore's validator does not check (it checks types and minimums only)."""
    for _, _, op, p in reqs:
        if op == "CreateTransformJob":
            if p["MaxPayloadInMB"] > MAX_PAYLOAD_MB:
                return f"{op}: MaxPayloadInMB {p['MaxPayloadInMB']} > {MAX_PAYLOAD_MB}"
            if p["BatchStrategy"] != "SINGLE_RECORD" or p["TransformInput"]["SplitType"] != "None":
                return f"{op}: audio needs BatchStrategy SINGLE_RECORD and SplitType None"
        for key in ("S3Uri", "S3OutputPath", "S3FailurePath", "InputLocation"):
            for where in (p, p.get("TransformInput", {}).get("DataSource", {}).get("S3DataSource", {}),
                          p.get("TransformOutput", {}), p.get("AsyncInferenceConfig", {}).get("OutputConfig", {})):
                if key in where and not str(where[key]).startswith("s3://"):
                    return f"{op}: {key} {where[key]!r} is not an s3:// URI"
    return None


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", required=True)
    p.add_argument("--image", required=True, help="ECR image built from deploy/sagemaker/Dockerfile")
    p.add_argument("--role", required=True, help="SageMaker execution role ARN")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model-data", help="s3://…/model.tar.gz (unpacked to /opt/ml/model)")
    src.add_argument("--model-uri", help="HARKEN_MODEL_URI: s3://…, https://…, models:/NAME@ALIAS")
    p.add_argument("--precision", choices=["f32", "int8"])
    p.add_argument("--instance-type", default="ml.m5.large")
    p.add_argument("--instance-count", type=int, default=1)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--serverless", action="store_true", help="serverless endpoint")
    mode.add_argument("--async", dest="async_", action="store_true", help="asynchronous endpoint")
    mode.add_argument("--transform", action="store_true", help="Batch Transform job instead of an endpoint")
    p.add_argument("--memory-mb", type=int, default=3072, choices=[1024, 2048, 3072, 4096, 5120, 6144])
    p.add_argument("--max-concurrency", type=int, default=5,
                   help="serverless: concurrent requests; async: concurrent requests per instance")
    p.add_argument("--input", help="--transform: s3:// prefix of the audio files")
    p.add_argument("--output", help="--transform: s3:// prefix of the results; --async: S3OutputPath")
    p.add_argument("--failure-output", help="--async: S3FailurePath for error responses")
    p.add_argument("--job-name", help="--transform: job name (default NAME-transform)")
    p.add_argument("--max-concurrent-transforms", type=int,
                   help="--transform: requests per instance "
                        "(default: the container's answer to GET /execution-parameters)")
    p.add_argument("--batch-errors", choices=["record", "fail"], default="record",
                   help="--transform: a bad file gives a JSON error record (default) or fails the job")
    p.add_argument("--invoke", help="--async: after creating the endpoint, invoke it on this s3:// audio file")
    p.add_argument("--region", default=None)
    p.add_argument("--dry-run", action="store_true", help="validate and print the requests; do not call AWS")
    p.add_argument("--wait", action="store_true", help="wait until the endpoint is InService (or the job completes)")
    a = p.parse_args()
    if a.transform and not (a.input and a.output):
        p.error("--transform needs --input and --output")
    if a.async_ and not a.output:
        p.error("--async needs --output")
    if a.invoke and not a.async_:
        p.error("--invoke is for --async endpoints")

    session = boto3.session.Session(region_name=a.region or "us-east-1")
    validator = ParamValidator()
    reqs = requests(a)
    for service, _, op, params in reqs:
        shape = session._session.get_service_model(service).operation_model(op).input_shape
        report = validator.validate(params, shape)
        if report.has_errors():
            sys.exit(f"{op}: {report.generate_report()}")
    problem = limits(reqs)
    if problem:
        sys.exit(problem)
    if a.dry_run:
        print(json.dumps({op: params for _, _, op, params in reqs}, indent=2))
        return
    clients = {}
    for service, method, op, params in reqs:
        client = clients.setdefault(service, session.client(service))
        if op == "InvokeEndpointAsync":
            clients["sagemaker"].get_waiter("endpoint_in_service").wait(EndpointName=a.name)
            out = client.invoke_endpoint_async(**params)
            print(f"{op}: result will be at {out['OutputLocation']}", file=sys.stderr)
            continue
        getattr(client, method)(**params)
        print(f"{op}: ok", file=sys.stderr)
    if a.wait and a.transform:
        name = reqs[-1][3]["TransformJobName"]
        clients["sagemaker"].get_waiter("transform_job_completed_or_stopped").wait(TransformJobName=name)
        print(f"transform job {name} finished", file=sys.stderr)
    elif a.wait:
        clients["sagemaker"].get_waiter("endpoint_in_service").wait(EndpointName=a.name)
        print(f"endpoint {a.name} is InService", file=sys.stderr)


if __name__ == "__main__":
    main()
