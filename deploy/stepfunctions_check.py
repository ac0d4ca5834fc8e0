#!/usr/bin/env python3
"""Check deploy/lambda/distributed-map.asl.json, the state machine deploy/lambda/batch.yaml deploys.

No AWS account is needed; run by deploy/validate.sh with the store venv's python (moto, cfn-lint).

1. Static checks of what the design relies on: two Distributed Maps over the same S3 listing, the
   short-file one on Express children (batched, its Lambda task under the 5-minute cap), the
   long-file one on Standard children (one invocation per file), complementary size filters on
   the same threshold, retries with backoff on Lambda throttling and service errors, a
   ResultWriter, every ${placeholder} matched by a DefinitionSubstitution in batch.yaml, and
   every transition landing on a state of its own scope with no state unreachable.
2. cfn-lint's Amazon States Language schema (rule E3601), on the definition inlined into an
   AWS::StepFunctions::StateMachine (cfn-lint does not open a SAM DefinitionUri).
3. moto's Step Functions interpreter (execute_state_machine mode) runs the definition against moto
   S3 and a stand-in for the Harken function (moto's Docker-free Lambda backend with its invoke
   replaced by a function that answers as the Rust handler does and records every event).
   moto's interpreter (5.x) lacks three things, so the copy it runs differs in exactly these:
     - ItemBatcher is unknown to its parser: each batcher becomes an ItemSelector building a batch
       of one ({"Items": [item], "BatchInput": ...}); multi-item batches are tested by running each
       ItemProcessor on its own with batches cut the way ItemBatcher cuts them (emulated here).
     - ExecutionType EXPRESS is unknown to its parser: the copy says STANDARD. The 5-minute cap of
       Express children is checked statically instead (1).
     - An indefinite JSONPath (a filter) that matches nothing raises in moto, where Step Functions
       returns []: moto's extract_json is patched to return [] for filters.
   ToleratedFailurePercentage is parsed but not enforced by moto (a failed child is counted in the
   Map Run and the Map goes on, whatever the count), so the checks read the Map Run's failure
   count; the threshold arithmetic itself is not exercised here.
"""
import copy
import json
import logging
import re
import sys
import threading
import time
import warnings
from pathlib import Path

from lambda_batch_check import load  # batch.yaml with its !Ref/!GetAtt tags

HERE = Path(__file__).resolve().parent
ASL = HERE / "lambda" / "distributed-map.asl.json"
TEMPLATE = HERE / "lambda" / "batch.yaml"
REGION = "us-east-1"
ACCOUNT = "123456789012"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:harken-batch"
LONG_BYTES = 1000  # the threshold the executions below run with
EXPRESS_CAP_S = 300
BATCH_LIMIT_BYTES = 262144  # Step Functions' limit on one batch's input


def fail(msg):
    sys.exit(f"FAIL stepfunctions_check: {msg}")


def check(cond, msg):
    if not cond:
        fail(msg)


def walk(node, path=()):
    """Yield (path, state) for every state, nested ones included."""
    for name, state in node.get("States", {}).items():
        yield path + (name,), state
        for i, branch in enumerate(state.get("Branches", [])):
            yield from walk(branch, path + (name, f"branch{i}"))
        if "ItemProcessor" in state:
            yield from walk(state["ItemProcessor"], path + (name,))


def scopes(node):
    """Every States object (top level, Parallel branches, Map item processors) with its StartAt."""
    yield node
    for _, state in walk(node):
        yield from state.get("Branches", [])
        if "ItemProcessor" in state:
            yield state["ItemProcessor"]


def graph_checks(asl):
    """Transitions stay inside their scope and every state is reachable (cfn-lint checks neither)."""
    for scope in {id(s): s for s in scopes(asl)}.values():
        states = scope["States"]
        reached, todo = set(), [scope["StartAt"]]
        while todo:
            name = todo.pop()
            check(name in states, f"transition to {name!r}, which is not a state of its scope")
            if name in reached:
                continue
            reached.add(name)
            st = states[name]
            todo += [t for t in [st.get("Next"), st.get("Default")] if t]
            todo += [c["Next"] for c in st.get("Choices", []) + st.get("Catch", [])]
            check(st.get("End") or st.get("Next") or st["Type"] in ("Choice", "Succeed", "Fail"),
                  f"{name}: neither Next nor End")
        check(reached == set(states), f"unreachable states: {sorted(set(states) - reached)}")


def tasks(node):
    return [s for _, s in walk(node) if s.get("Type") == "Task"]


def distributed_maps(asl):
    return {p[-1]: s for p, s in walk(asl) if s.get("Type") == "Map"
            and s.get("ItemProcessor", {}).get("ProcessorConfig", {}).get("Mode") == "DISTRIBUTED"}


def static_checks(raw, asl, template):
    sm = template["Resources"]["BatchStateMachine"]["Properties"]
    check(sm["Type"] == "STANDARD", "a Distributed Map needs a STANDARD parent state machine")
    check((TEMPLATE.parent / sm["DefinitionUri"]).resolve() == ASL, "DefinitionUri is not the ASL file")
    used = set(re.findall(r"\$\{(\w+)\}", raw))
    check(used == set(sm["DefinitionSubstitutions"]),
          f"placeholders {sorted(used)} != DefinitionSubstitutions {sorted(sm['DefinitionSubstitutions'])}")

    graph_checks(asl)
    maps = distributed_maps(asl)
    check(set(maps) == {"ShortFiles", "LongFiles"}, f"distributed maps: {sorted(maps)}")
    kinds = {n: m["ItemProcessor"]["ProcessorConfig"]["ExecutionType"] for n, m in maps.items()}
    check(kinds == {"ShortFiles": "EXPRESS", "LongFiles": "STANDARD"}, f"child execution types {kinds}")
    filters = {}
    for name, m in maps.items():
        reader = m["ItemReader"]
        check(reader["Resource"] == "arn:aws:states:::s3:listObjectsV2", f"{name}: ItemReader {reader}")
        check(reader["Parameters"] == {"Bucket.$": "$.bucket", "Prefix.$": "$.prefix"},
              f"{name}: ItemReader must list the bucket/prefix of the execution input")
        batcher = m["ItemBatcher"]
        check(batcher.get("MaxItemsPerBatch", 0) >= 1, f"{name}: MaxItemsPerBatch")
        check(0 < batcher.get("MaxInputBytesPerBatch", 0) <= BATCH_LIMIT_BYTES, f"{name}: MaxInputBytesPerBatch")
        check(batcher["BatchInput"] == {"bucket.$": "$.bucket", "output.$": "$.output"},
              f"{name}: BatchInput must carry the bucket and output the handler reads")
        check("MaxConcurrency" in m or "MaxConcurrencyPath" in m, f"{name}: no MaxConcurrency")
        check("ToleratedFailurePercentage" in m or "ToleratedFailurePercentagePath" in m,
              f"{name}: no ToleratedFailurePercentage")
        check(m["ResultWriter"]["Resource"] == "arn:aws:states:::s3:putObject", f"{name}: ResultWriter")
        picks = [s for _, s in walk(m["ItemProcessor"]) if "Items.$" in s.get("Parameters", {})]
        check(len(picks) == 1, f"{name}: expected one state choosing its items")
        filters[name] = picks[0]["Parameters"]["Items.$"]
        for t in tasks(m["ItemProcessor"]):
            check(t["Resource"] == "arn:aws:states:::lambda:invoke"
                  and t["Parameters"] == {"FunctionName": "${HarkenFunctionArn}", "Payload.$": "$"},
                  f"{name}: the Lambda task must pass the batch event through unchanged")
            retried = {e for r in t.get("Retry", []) if r.get("BackoffRate", 1) > 1 for e in r["ErrorEquals"]}
            for err in ("Lambda.TooManyRequestsException", "Lambda.ServiceException"):
                check(err in retried, f"{name}: no backoff retry on {err}")
            check(t.get("TimeoutSeconds", 0) > 0, f"{name}: Lambda task without TimeoutSeconds")
    # Express children stop at 5 minutes: the task must time out first, so the failure is
    # reported as States.Timeout with the task's name rather than as a killed child.
    short_task = tasks(maps["ShortFiles"]["ItemProcessor"])
    check(len(short_task) == 1 and short_task[0]["TimeoutSeconds"] < EXPRESS_CAP_S,
          "ShortFiles: the Lambda task must time out inside the Express 5-minute cap")
    long_tasks = tasks(maps["LongFiles"]["ItemProcessor"])
    check(len(long_tasks) == 1 and long_tasks[0]["TimeoutSeconds"] <= 900, "LongFiles: task timeout")
    check(filters["ShortFiles"] == "$.Items[?(@.Size > 0 && @.Size <= ${LongFileBytes})]",
          f"ShortFiles filter {filters['ShortFiles']!r}")
    check(filters["LongFiles"] == "$.Items[?(@.Size > ${LongFileBytes})]", f"LongFiles filter {filters['LongFiles']!r}")
    fn = template["Resources"]["HarkenBatchFunction"]["Properties"]
    check(fn["Timeout"] >= long_tasks[0]["TimeoutSeconds"], "the long-file task outlives the function timeout")


def schema_check(asl, template):
    from cfnlint.api import ManualArgs, lint

    subs = template["Resources"]["BatchStateMachine"]["Properties"]["DefinitionSubstitutions"]
    inline = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {"Sm": {"Type": "AWS::StepFunctions::StateMachine", "Properties": {
            "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/sfn",
            "Definition": asl,
            "DefinitionSubstitutions": {k: "x" for k in subs},
        }}},
    }
    matches = lint(json.dumps(inline), config=ManualArgs(regions=[REGION]))
    check(not matches, "cfn-lint on the inlined definition:\n" + "\n".join(str(m) for m in matches))


def substitute(raw, values):
    return json.loads(re.sub(r"\$\{(\w+)\}", lambda m: str(values[m.group(1)]), raw))


def moto_copy(asl):
    """The definition as moto's interpreter can run it (see the module docstring)."""
    asl = copy.deepcopy(asl)
    for _, state in walk(asl):
        proc = state.get("ItemProcessor", {}).get("ProcessorConfig", {})
        if proc.get("ExecutionType") == "EXPRESS":
            proc["ExecutionType"] = "STANDARD"
        if "ItemBatcher" in state:
            batcher = state.pop("ItemBatcher")
            state["ItemSelector"] = {"Items.$": "States.Array($$.Map.Item.Value)",
                                     "BatchInput": batcher["BatchInput"]}
    return asl


def batches(items, batcher, batch_input):
    """Cut items as ItemBatcher does: at most MaxItemsPerBatch, and MaxInputBytesPerBatch of JSON."""
    out, cur = [], []
    for item in items:
        trial = {"Items": cur + [item], "BatchInput": batch_input}
        if cur and (len(cur) == batcher["MaxItemsPerBatch"]
                    or len(json.dumps(trial)) > batcher["MaxInputBytesPerBatch"]):
            out.append({"Items": cur, "BatchInput": batch_input})
            cur = []
        cur.append(item)
        check(len(json.dumps({"Items": [item], "BatchInput": batch_input})) <= batcher["MaxInputBytesPerBatch"],
              "one item does not fit MaxInputBytesPerBatch")
    if cur:
        out.append({"Items": cur, "BatchInput": batch_input})
    return out


class FakeHarken:
    """Answers batch events as the Rust handler does: {"results": [...], "failed": N}.

    A key containing "corrupt" is a failed file; the first invocation touching a key containing
    "throttle" is refused with TooManyRequestsException (Step Functions must retry it)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.events, self.throttled = [], set()

    def invoke(self, backend, function_name, qualifier, body, headers, response_headers):
        from moto.awslambda.exceptions import LambdaClientError

        event = json.loads(body)
        check(set(event) == {"Items", "BatchInput"}, f"the function got {sorted(event)}, not an ItemBatcher event")
        keys = [item["Key"] for item in event["Items"]]
        with self.lock:
            fresh = [k for k in keys if "throttle" in k and k not in self.throttled]
            if fresh:
                self.throttled.update(fresh)
                raise LambdaClientError("TooManyRequestsException", "Rate exceeded")
            self.events.append(event)
        out = event["BatchInput"]["output"].rstrip("/")
        results = [{"key": k, "error": "corrupt audio"} if "corrupt" in k else
                   {"key": k, "output": f"{out}/{k.rsplit('.', 1)[0]}.json"} for k in keys]
        return json.dumps({"results": results, "failed": sum("error" in r for r in results)}).encode()


def run(sfn, definition, payload, name):
    arn = sfn.create_state_machine(name=name, definition=json.dumps(definition),
                                   roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn")["stateMachineArn"]
    ex = sfn.start_execution(stateMachineArn=arn, input=json.dumps(payload))["executionArn"]
    deadline = time.time() + 60
    while time.time() < deadline:
        d = sfn.describe_execution(executionArn=ex)
        if d["status"] != "RUNNING":
            return d
        time.sleep(0.05)
    fail(f"{name}: execution still running after 60 s")


def execution_checks(raw):
    import boto3
    import moto.stepfunctions.parser.asl.utils.json_path as json_path
    from moto import mock_aws
    from moto.awslambda_simple.models import LambdaSimpleBackend

    # moto raises on a filter matching nothing; Step Functions (Jayway JsonPath) returns [].
    original = json_path.extract_json

    def extract_json(path, data):
        try:
            return original(path, data)
        except json_path.NoSuchJsonPathError:
            if "[?(" in path:
                return []
            raise

    json_path.extract_json = extract_json
    fake = FakeHarken()
    LambdaSimpleBackend.invoke = lambda self, *a: fake.invoke(self, *a)

    values = {"LongFileBytes": LONG_BYTES, "HarkenFunctionArn": FUNCTION_ARN,
              "ReportBucket": "reports", "ReportPrefix": "runs/"}
    asl = substitute(raw, values)
    config = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
    with mock_aws(config=config):
        s3 = boto3.client("s3", region_name=REGION)
        sfn = boto3.client("stepfunctions", region_name=REGION)
        for bucket in ("audio", "reports"):
            s3.create_bucket(Bucket=bucket)
        sizes = {"in/a.wav": 10, "in/b.mp3": 999, "in/c.flac": 1000, "in/d.wav": 1001,
                 "in/e.ogg": 50000, "in/throttle.wav": 20, "in/sub/": 0, "other/x.wav": 10}
        for key, size in sizes.items():
            s3.put_object(Bucket="audio", Key=key, Body=b"\0" * size)
        listed = {k: v for k, v in sizes.items() if k.startswith("in/")}
        short = {k for k, v in listed.items() if 0 < v <= LONG_BYTES}
        long = {k for k, v in listed.items() if v > LONG_BYTES}
        payload = {"bucket": "audio", "prefix": "in/", "output": "s3://out/t/", "short_max_concurrency": 2}

        # The whole state machine, batches of one (ItemBatcher emulated by an ItemSelector).
        d = run(sfn, moto_copy(asl), payload, "whole")
        check(d["status"] == "SUCCEEDED", f"whole run: {d['status']} {d.get('error')} {d.get('cause')}")
        seen = [k for e in fake.events for k in (i["Key"] for i in e["Items"])]
        check(sorted(seen) == sorted(short | long),
              f"each listed non-empty file must reach the function once: got {sorted(seen)}")
        check(all(e["BatchInput"] == {"bucket": "audio", "output": "s3://out/t/"} for e in fake.events),
              "BatchInput must carry the execution's bucket and output")
        check("in/throttle.wav" in fake.throttled, "the throttled invocation was not retried")
        output = json.loads(d["output"])
        check(len(output) == 2 and all("ResultWriterDetails" in o for o in output),
              f"expected both Map Runs' ResultWriter details, got {output}")
        for o in output:
            w = o["ResultWriterDetails"]
            check(w["Bucket"] == "reports" and w["Key"].startswith("runs/"), f"ResultWriter wrote {w}")
            s3.head_object(Bucket=w["Bucket"], Key=w["Key"])

        # Each child workflow on real ItemBatcher-shaped batches, mixed sizes.
        maps = distributed_maps(asl)
        listing = [{"Key": k, "Size": v, "Etag": '"0"', "LastModified": 1767225600, "StorageClass": "STANDARD"}
                   for k, v in sorted(listed.items())]
        batch_input = {"bucket": "audio", "output": "s3://out/t/"}
        for name, expect_keys, one_per_call in (("ShortFiles", short, False), ("LongFiles", long, True)):
            m = maps[name]
            child = {k: v for k, v in m["ItemProcessor"].items() if k != "ProcessorConfig"}
            cut = batches(listing, m["ItemBatcher"], batch_input)
            check(len(cut) == -(-len(listing) // m["ItemBatcher"]["MaxItemsPerBatch"]), f"{name}: batching")
            fake.events.clear()
            for i, batch in enumerate(cut):
                d = run(sfn, child, batch, f"{name}-batch{i}")
                check(d["status"] == "SUCCEEDED", f"{name} child: {d['status']} {d.get('error')} {d.get('cause')}")
            got = [[i["Key"] for i in e["Items"]] for e in fake.events]
            check(sorted(k for keys in got for k in keys) == sorted(expect_keys),
                  f"{name}: the function got {got}, expected exactly {sorted(expect_keys)}")
            if one_per_call:
                check(all(len(keys) == 1 for keys in got), f"{name}: long files must go one per invocation: {got}")
            else:
                check(len(got) == len(cut), f"{name}: short files of a batch must share an invocation: {got}")

        # A batch with no short file ends without invoking; a failed file fails its child.
        short_child = {k: v for k, v in maps["ShortFiles"]["ItemProcessor"].items() if k != "ProcessorConfig"}
        fake.events.clear()
        only_long = {"Items": [i for i in listing if i["Size"] > LONG_BYTES], "BatchInput": batch_input}
        d = run(sfn, short_child, only_long, "short-only-long")
        check(d["status"] == "SUCCEEDED" and not fake.events, "ShortFiles: a batch of long files must not invoke")
        bad = {"Items": [{"Key": "in/corrupt.wav", "Size": 10}, {"Key": "in/ok.wav", "Size": 10}],
               "BatchInput": batch_input}
        d = run(sfn, short_child, bad, "short-corrupt")
        check(d["status"] == "FAILED" and d.get("error") == "Harken.FilesFailed",
              f"ShortFiles: a batch with a failed file must fail its child, got {d['status']} {d.get('error')}")
        check("in/corrupt.wav" in d.get("cause", ""), "ShortFiles: the failure's cause must name the file")
        long_child = {k: v for k, v in maps["LongFiles"]["ItemProcessor"].items() if k != "ProcessorConfig"}
        bad = {"Items": [{"Key": "in/corrupt-long.wav", "Size": 5000}, {"Key": "in/long.wav", "Size": 5000}],
               "BatchInput": batch_input}
        d = run(sfn, long_child, bad, "long-corrupt")
        check(d["status"] == "FAILED" and d.get("error") == "Harken.FilesFailed",
              f"LongFiles: a failed file must fail its child, got {d['status']} {d.get('error')}")

        # The whole machine with a failed file: the Map Run counts the failed child. (moto
        # records it but does not apply ToleratedFailurePercentage, so the execution succeeds.)
        s3.put_object(Bucket="audio", Key="in/corrupt.wav", Body=b"\0" * 10)
        d = run(sfn, moto_copy(asl), payload, "whole-corrupt")
        runs = sfn.list_map_runs(executionArn=d["executionArn"])["mapRuns"]
        counts = sorted((r["mapRunArn"], sfn.describe_map_run(mapRunArn=r["mapRunArn"])["itemCounts"]["failed"])
                        for r in runs)
        check(sorted(c for _, c in counts) == [0, 1], f"Map Runs' failed item counts: {counts}")


def main():
    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)  # moto logs every failed child and path probe
    raw = ASL.read_text()
    try:
        asl = json.loads(raw)
    except json.JSONDecodeError as e:
        fail(f"{ASL.name} is not JSON: {e}")
    template = load(TEMPLATE)
    static_checks(raw, asl, template)
    print("ok   stepfunctions_check: design checks (two Distributed Maps, Express under 5 min, filters, retries)")
    schema_check(asl, template)
    print("ok   stepfunctions_check: cfn-lint States Language schema (E3601)")
    execution_checks(raw)
    print("ok   stepfunctions_check: moto executions (routing, batching, retry, failures, ResultWriter)")


if __name__ == "__main__":
    main()
