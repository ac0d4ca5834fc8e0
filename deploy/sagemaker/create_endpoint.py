#!/usr/bin/env python3
"""Create a SageMaker model, endpoint configuration and endpoint serving Harken.

Real-time (always-on instances):
    create_endpoint.py --name asr --image ACCOUNT.dkr.ecr.REGION.amazonaws.com/harken:1 \
        --role arn:aws:iam::ACCOUNT:role/SageMakerRole --model-data s3://bucket/whisper-base.tar.gz \
        --instance-type ml.m5.large --instance-count 1

Serverless (pay per request; 1-6 GB memory, 4 MB payloads, 60 s):
    create_endpoint.py ... --serverless --memory-mb 3072 --max-concurrency 5

The model is either a SageMaker `model.tar.gz` (--model-data, unpacked at /opt/ml/model, where
`harken serve` looks) or any Harken model URI (--model-uri s3://…/pkg, models:/asr@prod), passed
as HARKEN_MODEL_URI so model versions change without a new image.

--dry-run prints the three requests after validating them against the SageMaker API model that
ships with botocore, without calling AWS (what CI runs).
"""
import argparse
import json
import sys

import boto3
from botocore.validate import ParamValidator


def requests(a):
    env = {"HARKEN_LOG": "info"}
    if a.model_uri:
        env["HARKEN_MODEL_URI"] = a.model_uri
    if a.precision:
        env["HARKEN_PRECISION"] = a.precision
    container = {"Image": a.image, "Environment": env}
    if a.model_data:
        container["ModelDataUrl"] = a.model_data
    model = {"ModelName": f"{a.name}-model", "ExecutionRoleArn": a.role, "PrimaryContainer": container}
    variant = {"VariantName": "AllTraffic", "ModelName": model["ModelName"]}
    if a.serverless:
        variant["ServerlessConfig"] = {"MemorySizeInMB": a.memory_mb, "MaxConcurrency": a.max_concurrency}
    else:
        variant.update({"InstanceType": a.instance_type, "InitialInstanceCount": a.instance_count,
                        "ContainerStartupHealthCheckTimeoutInSeconds": 600})
    config = {"EndpointConfigName": f"{a.name}-config", "ProductionVariants": [variant]}
    endpoint = {"EndpointName": a.name, "EndpointConfigName": config["EndpointConfigName"]}
    return [("create_model", "CreateModel", model),
            ("create_endpoint_config", "CreateEndpointConfig", config),
            ("create_endpoint", "CreateEndpoint", endpoint)]


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
    p.add_argument("--serverless", action="store_true")
    p.add_argument("--memory-mb", type=int, default=3072, choices=[1024, 2048, 3072, 4096, 5120, 6144])
    p.add_argument("--max-concurrency", type=int, default=5)
    p.add_argument("--region", default=None)
    p.add_argument("--dry-run", action="store_true", help="validate and print the requests; do not call AWS")
    p.add_argument("--wait", action="store_true", help="wait until the endpoint is InService")
    a = p.parse_args()

    session = boto3.session.Session(region_name=a.region or "us-east-1")
    service = session._session.get_service_model("sagemaker")
    validator = ParamValidator()
    reqs = requests(a)
    for _, op, params in reqs:
        report = validator.validate(params, service.operation_model(op).input_shape)
        if report.has_errors():
            sys.exit(f"{op}: {report.generate_report()}")
    if a.dry_run:
        print(json.dumps({op: params for _, op, params in reqs}, indent=2))
        return
    sm = session.client("sagemaker")
    for method, op, params in reqs:
        getattr(sm, method)(**params)
        print(f"{op}: ok", file=sys.stderr)
    if a.wait:
        sm.get_waiter("endpoint_in_service").wait(EndpointName=a.name)
        print(f"endpoint {a.name} is InService", file=sys.stderr)


if __name__ == "__main__":
    main()
