#!/usr/bin/env python3
"""Validate the custom resources in deploy/k8s/ that kubernetes-validate has no schema for.
Run by deploy/validate.sh (which also runs yamllint on them).

- KEDA TriggerAuthentication and ScaledObject (keda-scaledobject.yaml) and the Knative Service
  (knative-service.yaml) are validated against their CRDs' OpenAPI schemas, vendored in
  deploy/k8s/schemas/ from datreeio/CRDs-catalog (strict: unknown fields are errors, as with
  `kubectl apply --validate=strict`). The KServe CRD schema is 1.4 MB, so it is not vendored: its
  predictor container is validated as a Pod by kubernetes-validate, and its scaling fields here.
- Then the relations the schemas cannot see:
  KEDA: the ScaledObject's authenticationRef names a TriggerAuthentication of the file; an
    aws-sqs-queue trigger whose queueURL is an SQS URL in awsRegion, with a positive queueLength;
    a prometheus trigger on harken_queued_audio_seconds with a positive threshold; min <= max
    replicas; and it does not target the Deployment hpa.yaml already scales (two HPAs would fight).
  Knative and KServe: scaling on concurrency, containerConcurrency equal to the server's workers
    (HARKEN_WORKERS), the soft target no higher than it, min <= max scale, the same image and
    `serve` arguments as deployment.yaml; Knative's probes on the serving port.
"""
import json
import re
import sys
from pathlib import Path

import jsonschema
import yaml

K8S = Path(__file__).resolve().parent / "k8s"
SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh_scaledobject_v1alpha1.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda.sh_triggerauthentication_v1alpha1.json",
    ("serving.knative.dev/v1", "Service"): "serving.knative.dev_service_v1.json",
}


def fail(msg):
    sys.exit(f"FAIL k8s_crd_check: {msg}")


def check(cond, msg):
    if not cond:
        fail(msg)


def docs(name):
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def schema_check(name, doc):
    key = (doc["apiVersion"], doc["kind"])
    check(key in SCHEMAS, f"{name}: no schema for {key}")
    schema = json.loads((K8S / "schemas" / SCHEMAS[key]).read_text())
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
    check(not errors, f"{name} {doc['kind']}: " + "; ".join(
        f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in errors[:5]))


def env_of(container):
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def keda_checks(objs, hpa):
    auths = {o["metadata"]["name"] for o in objs if o["kind"] == "TriggerAuthentication"}
    scaled = [o for o in objs if o["kind"] == "ScaledObject"]
    check(scaled, "keda-scaledobject.yaml: no ScaledObject")
    for so in scaled:
        spec, name = so["spec"], so["metadata"]["name"]
        check(spec["scaleTargetRef"].get("kind", "Deployment") == "Deployment", f"{name}: target kind")
        check(spec["scaleTargetRef"]["name"] != hpa["spec"]["scaleTargetRef"]["name"],
              f"{name}: targets the Deployment hpa.yaml scales; KEDA's HPA and hpa.yaml would fight")
        check(spec.get("minReplicaCount", 0) <= spec.get("maxReplicaCount", 100), f"{name}: min > max replicas")
        types = {t["type"]: t for t in spec["triggers"]}
        check(set(types) == {"aws-sqs-queue", "prometheus"}, f"{name}: triggers {sorted(types)}")
        for t in spec["triggers"]:
            ref = t.get("authenticationRef", {}).get("name")
            check(ref is None or ref in auths, f"{name}: authenticationRef {ref!r} is not in the file")
        sqs = types["aws-sqs-queue"]["metadata"]
        m = re.fullmatch(r"https://sqs\.([a-z0-9-]+)\.amazonaws\.com/\d{12}/[\w-]{1,80}", sqs["queueURL"])
        check(m, f"{name}: queueURL {sqs['queueURL']!r} is not an SQS queue URL")
        check(sqs.get("awsRegion") == m.group(1), f"{name}: awsRegion differs from the queue URL's region")
        check(sqs["queueLength"].isdigit() and int(sqs["queueLength"]) > 0, f"{name}: queueLength")
        prom = types["prometheus"]["metadata"]
        check("harken_queued_audio_seconds" in prom["query"],
              f"{name}: the query must read harken_queued_audio_seconds")
        check(float(prom["threshold"]) > 0, f"{name}: threshold")
        check(re.match(r"https?://", prom["serverAddress"]), f"{name}: serverAddress")


def serving_checks(name, workers, concurrency, target, lo, hi, container, deployment):
    check(concurrency == workers, f"{name}: containerConcurrency {concurrency} != HARKEN_WORKERS {workers}")
    check(0 < target <= concurrency, f"{name}: target {target} must be within 1..containerConcurrency")
    check(lo <= hi, f"{name}: min scale {lo} > max scale {hi}")
    ref = deployment["spec"]["template"]["spec"]["containers"][0]
    check(container["image"] == ref["image"] and container["args"] == ref["args"],
          f"{name}: image/args differ from deployment.yaml's")
    check("HARKEN_MODEL_URI" in env_of(container), f"{name}: no HARKEN_MODEL_URI")


def knative_checks(ksvc, deployment):
    tmpl = ksvc["spec"]["template"]
    ann, spec = tmpl["metadata"]["annotations"], tmpl["spec"]
    check(ann.get("autoscaling.knative.dev/metric") == "concurrency", "knative: metric must be concurrency")
    check(ann.get("autoscaling.knative.dev/class", "kpa.autoscaling.knative.dev") == "kpa.autoscaling.knative.dev",
          "knative: the concurrency metric needs the KPA class")
    (c,) = spec["containers"]
    check(len(c["ports"]) == 1, "knative: one port only")
    port = c["ports"][0]["containerPort"]
    for probe in ("readinessProbe", "livenessProbe"):
        p = c.get(probe, {}).get("httpGet", {}).get("port", port)
        check(p == port, f"knative: {probe} port {p} is not the serving port")
    check(spec.get("timeoutSeconds", 300) <= 600, "knative: timeoutSeconds above the default maximum 600")
    serving_checks("knative", int(env_of(c)["HARKEN_WORKERS"]), spec["containerConcurrency"],
                   float(ann["autoscaling.knative.dev/target"]), int(ann["autoscaling.knative.dev/min-scale"]),
                   int(ann["autoscaling.knative.dev/max-scale"]), c, deployment)


def kserve_checks(isvc, deployment):
    pred = isvc["spec"]["predictor"]
    check(pred.get("scaleMetric") == "concurrency", "kserve: scaleMetric must be concurrency")
    for k in ("scaleTarget", "containerConcurrency", "minReplicas", "maxReplicas"):
        check(isinstance(pred.get(k), int), f"kserve: {k} must be an integer")
    (c,) = pred["containers"]
    serving_checks("kserve", int(env_of(c)["HARKEN_WORKERS"]), pred["containerConcurrency"],
                   pred["scaleTarget"], pred["minReplicas"], pred["maxReplicas"], c, deployment)


def main():
    deployment = docs("deployment.yaml")[0]
    hpa = docs("hpa.yaml")[0]
    keda = docs("keda-scaledobject.yaml")
    (ksvc,) = docs("knative-service.yaml")
    (isvc,) = docs("kserve-inferenceservice.yaml")
    for name, objs in (("keda-scaledobject.yaml", keda), ("knative-service.yaml", [ksvc])):
        for doc in objs:
            schema_check(name, doc)
    print("ok   k8s_crd_check: KEDA ScaledObject/TriggerAuthentication, Knative Service against their CRD schemas")
    keda_checks(keda, hpa)
    knative_checks(ksvc, deployment)
    kserve_checks(isvc, deployment)
    print("ok   k8s_crd_check: KEDA triggers (SQS, harken_queued_audio_seconds); Knative/KServe concurrency = workers")


if __name__ == "__main__":
    main()
