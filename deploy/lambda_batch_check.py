#!/usr/bin/env python3
"""Check the wiring of deploy/lambda/batch.yaml that cfn-lint does not, and the S3 Batch
Operations job request in deploy/lambda/s3-batch-job.json. Run by deploy/validate.sh.

cfn-lint validates each resource against its schema but not the relations between them, and it
does not look inside a SAM event's properties (ScalingConfig, FunctionResponseTypes). This checks:
  - the function is the one of template.yaml (provided.al2023, bootstrap, same zip) with
    HARKEN_MODEL_URI and an s3:// HARKEN_OUTPUT_URI;
  - SQS: visibility timeout >= 6 x the function timeout, a redrive policy to the dead-letter queue,
    which keeps messages longer than the queue; the event source reports partial batch failures,
    its BatchSize and MaximumConcurrency bounds are within Lambda's (1-10 without a batching
    window, 2-1000); the bucket notifies that queue and the queue policy lets S3 send;
  - the S3 Batch Operations role trusts batchoperations.s3.amazonaws.com and may invoke the function;
  - s3-batch-job.json validates against botocore's S3 Control CreateJob model, invokes with
    InvocationSchemaVersion 2.0 (the schema with UserArguments) and asks for a report; a request
    with a broken field is refused (so the validator is really consulted).
"""
import copy
import json
import sys
import uuid
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "lambda" / "batch.yaml"
SINGLE = HERE / "lambda" / "template.yaml"
JOB = HERE / "lambda" / "s3-batch-job.json"


def fail(msg):
    sys.exit(f"FAIL lambda_batch_check: {msg}")


def check(cond, msg):
    if not cond:
        fail(msg)


class CfnLoader(yaml.SafeLoader):
    pass


def _tag(loader, suffix, node):
    """!Ref x -> {"Ref": x}; !GetAtt a.b -> {"Fn::GetAtt": "a.b"} (CloudFormation's JSON form)."""
    key = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        return {key: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {key: loader.construct_sequence(node)}
    return {key: loader.construct_mapping(node)}


CfnLoader.add_multi_constructor("!", _tag)


def load(path):
    return yaml.load(path.read_text(), Loader=CfnLoader)


def value(template, v):
    """A literal, or the Default of the parameter a !Ref names."""
    if isinstance(v, dict) and "Ref" in v:
        return template["Parameters"][v["Ref"]]["Default"]
    return v


def bounds(template, v):
    """(min, max) a property can take: a literal, or a parameter's MinValue/MaxValue."""
    if isinstance(v, dict) and "Ref" in v:
        p = template["Parameters"][v["Ref"]]
        return p.get("MinValue"), p.get("MaxValue")
    return v, v


def template_checks():
    t = load(TEMPLATE)
    res = t["Resources"]
    fn = res["HarkenBatchFunction"]["Properties"]
    single = load(SINGLE)["Resources"]["HarkenFunction"]["Properties"]
    for key in ("Runtime", "Handler", "CodeUri"):
        check(fn[key] == single[key], f"function {key} {fn[key]!r} differs from template.yaml's {single[key]!r}")
    env = fn["Environment"]["Variables"]
    check("HARKEN_MODEL_URI" in env, "no HARKEN_MODEL_URI")
    out = env.get("HARKEN_OUTPUT_URI", {})
    check(isinstance(out, dict) and str(out.get("Fn::Sub", "")).startswith("s3://"), f"HARKEN_OUTPUT_URI {out!r}")

    queue = res["InboxQueue"]["Properties"]
    dlq = res["InboxDeadLetterQueue"]["Properties"]
    check(queue["VisibilityTimeout"] >= 6 * fn["Timeout"],
          f"queue visibility {queue['VisibilityTimeout']} s < 6 x function timeout {fn['Timeout']} s")
    redrive = queue["RedrivePolicy"]
    check(redrive["deadLetterTargetArn"] == {"Fn::GetAtt": "InboxDeadLetterQueue.Arn"}, "redrive target is not the DLQ")
    check(1 <= redrive["maxReceiveCount"] <= 1000, "maxReceiveCount out of 1-1000")
    check(dlq["MessageRetentionPeriod"] > queue["MessageRetentionPeriod"],
          "the DLQ must keep messages longer than the queue (retention counts from the first enqueue)")

    sqs = [e["Properties"] for e in fn["Events"].values() if e["Type"] == "SQS"]
    check(len(sqs) == 1, "expected one SQS event source")
    ev = sqs[0]
    check(ev["Queue"] == {"Fn::GetAtt": "InboxQueue.Arn"}, "the event source does not read InboxQueue")
    check("ReportBatchItemFailures" in ev.get("FunctionResponseTypes", []), "no ReportBatchItemFailures")
    lo, hi = bounds(t, ev["BatchSize"])
    window = ev.get("MaximumBatchingWindowInSeconds", 0)
    check(lo >= 1 and hi <= (10 if not window else 10000), f"BatchSize bounds {lo}-{hi}")
    check(0 <= window <= 300, "MaximumBatchingWindowInSeconds out of 0-300")
    lo, hi = bounds(t, ev["ScalingConfig"]["MaximumConcurrency"])
    check(lo is not None and hi is not None and lo >= 2 and hi <= 1000,
          f"ScalingConfig.MaximumConcurrency bounds {lo}-{hi} outside Lambda's 2-1000")

    bucket = res["InboxBucket"]
    notes = bucket["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    check(any(n["Queue"] == {"Fn::GetAtt": "InboxQueue.Arn"} and n["Event"].startswith("s3:ObjectCreated")
              for n in notes), "the inbox bucket does not notify InboxQueue of new objects")
    check(bucket.get("DependsOn") == "InboxQueuePolicy", "the bucket must wait for the queue policy")
    stmts = res["InboxQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    check(any(s["Principal"] == {"Service": "s3.amazonaws.com"} and s["Action"] == "sqs:SendMessage"
              for s in stmts), "the queue policy does not let S3 send")
    check(res["InboxQueuePolicy"]["Properties"]["Queues"] == [{"Ref": "InboxQueue"}], "queue policy target")

    role = res["S3BatchOperationsRole"]["Properties"]
    principals = [s["Principal"].get("Service") for s in role["AssumeRolePolicyDocument"]["Statement"]]
    check(principals == ["batchoperations.s3.amazonaws.com"], f"S3 Batch role trusts {principals}")
    invoke = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]
              if s["Action"] == "lambda:InvokeFunction"]
    check(invoke and {"Fn::GetAtt": "HarkenBatchFunction.Arn"} in invoke[0]["Resource"],
          "the S3 Batch role may not invoke HarkenBatchFunction")


def job_checks():
    import boto3
    from botocore.validate import ParamValidator

    job = json.loads(JOB.read_text())
    op = job["Operation"]["LambdaInvoke"]
    check(op["InvocationSchemaVersion"] == "2.0", "InvocationSchemaVersion must be 2.0 (UserArguments)")
    check(op["FunctionArn"].startswith("arn:aws:lambda:") and ":function:" in op["FunctionArn"], "FunctionArn")
    check(str(op.get("UserArguments", {}).get("output", "")).startswith("s3://"), "UserArguments.output")
    check(job["Report"]["Enabled"] and job["Report"].get("Format") and job["Report"].get("Bucket"),
          "the job must write a completion report")
    model = boto3.session.Session(region_name="us-east-1")._session.get_service_model("s3control")
    shape = model.operation_model("CreateJob").input_shape
    validator = ParamValidator()
    # The CLI and boto3 fill ClientRequestToken (an idempotency token) before validating.
    request = dict(job, ClientRequestToken=job.get("ClientRequestToken", str(uuid.uuid4())))
    report = validator.validate(request, shape)
    check(not report.has_errors(), f"CreateJob: {report.generate_report()}")
    broken = copy.deepcopy(request)
    broken["Operation"]["LambdaInvoke"]["InvocationSchemaVersion"] = 2
    broken["Report"].pop("Enabled")
    check(validator.validate(broken, shape).has_errors(), "botocore accepted a broken CreateJob request")


def main():
    template_checks()
    print("ok   lambda_batch_check: batch.yaml wiring (SQS visibility, DLQ, partial failures, S3 Batch role)")
    job_checks()
    print("ok   lambda_batch_check: s3-batch-job.json validates as S3 Control CreateJob (bad input refused)")


if __name__ == "__main__":
    main()
