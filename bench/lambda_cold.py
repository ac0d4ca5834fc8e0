#!/usr/bin/env python3
"""Lambda cold versus warm start, measured with the real bootstrap on this machine.

The model package sits on a local S3-protocol server (moto); /tmp's cache starts empty, as in a
fresh Lambda environment. The function runs as `bootstrap` against the documented Runtime API
(tests/lambda/runtime_api.py). Measured: init (process start until the function first asks for
an event), its phases from the function's own `model ready` log line, then the first and second
invocation on a 20-s clip, and a keep-warm ping. Then the same with the model bundled in the
deployment (a local package directory, as /var/task/model).

    bench/lambda-cold.sh [MODEL]      (MODEL: installed name or Whisper dir; default base)

Needs: a release build (cargo build --release), scripts/install-test-tools.sh (moto), sox,
../shared/eval/real for the speech.
"""
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("HARKEN_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "harken")
BIN = Path(os.environ.get("HARKEN_BIN") or Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release/harken")
VENV = Path(os.environ.get("HARKEN_STORE_VENV") or CACHE / "store-venv")
SHARED = ROOT.parent / "shared"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, timeout=60):
    t = time.time()
    while time.time() - t < timeout:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"port {port} did not open")


def http(method, url, body=None, headers=None, timeout=600):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read() or b"null")


def clip_20s(tmp):
    """20 s of real recorded speech: eval/real clips concatenated, resampled to 16 kHz mono."""
    parts = []
    total = 0.0
    for i, f in enumerate(sorted((SHARED / "eval/real/audio").glob("*.wav"))):
        out = tmp / f"part{i:03}.wav"
        subprocess.run(["sox", str(f), "-r", "16000", "-c", "1", "-b", "16", str(out)], check=True)
        total += float(subprocess.check_output(["soxi", "-D", str(out)]))
        parts.append(str(out))
        if total >= 20.5:
            break
    clip = tmp / "clip20.wav"
    subprocess.run(["sox", *parts, str(clip), "trim", "0", "20"], check=True)
    return clip


def run_function(tmp, api_port, env_extra, clip):
    link = tmp / "bootstrap"
    if not link.exists():
        link.symlink_to(BIN)
    log = tmp / f"bootstrap-{time.time_ns()}.log"
    env = {"PATH": os.environ["PATH"], "HOME": os.environ["HOME"],
           "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{api_port}", "AWS_LAMBDA_FUNCTION_NAME": "harken",
           "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3008", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", **env_extra}
    start = time.time()
    proc = subprocess.Popen([str(link)], env=env, stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    try:
        ready = None
        while ready is None:
            if proc.poll() is not None:
                raise SystemExit(f"bootstrap exited: {log.read_text()}")
            try:
                ready = http("GET", f"http://127.0.0.1:{api_port}/test/ready")["first_next_unix"]
            except urllib.error.HTTPError:
                time.sleep(0.01)
        init_ms = (ready - start) * 1000
        event = json.dumps({"audio_base64": base64.b64encode(clip.read_bytes()).decode(), "language": "en"}).encode()
        calls = []
        for _ in range(2):
            r = http("POST", f"http://127.0.0.1:{api_port}/test/invoke", event, {"Content-Type": "application/json"})
            assert r["result"]["statusCode"] == 200, r
            calls.append(r["ms"])
        warm = http("POST", f"http://127.0.0.1:{api_port}/test/invoke", b'{"warmup": true}', {"Content-Type": "application/json"})
        text = r["result"]["body"]["text"]
    finally:
        proc.terminate()
        proc.wait()
    phases = {}
    for line in log.read_text().splitlines():
        if '"model ready"' in line:
            d = json.loads(line)
            phases = {k: d.get(k) for k in ("resolve_ms", "download_ms", "verify_ms", "load_ms", "downloaded_bytes", "cache_hit")}
    return {"init_ms": init_ms, "first_ms": calls[0], "second_ms": calls[1], "keepwarm_ms": warm["ms"], "phases": phases, "text": text}


def main():
    model = sys.argv[1] if len(sys.argv) > 1 else "base"
    src = Path(model) if Path(model).is_dir() else CACHE / "models" / f"whisper-{model}"
    for need, what in [(BIN, "cargo build --release"), (VENV / "bin/moto_server", "scripts/install-test-tools.sh"), (src / "model.bin", f"scripts/install-models.sh {model}")]:
        if not Path(need).exists():
            raise SystemExit(f"missing {need}: run {what}")
    tmp = Path(tempfile.mkdtemp(prefix="harken-lambda-bench-"))
    procs = []
    try:
        clip = clip_20s(tmp)
        pkg = tmp / "pkg"
        subprocess.run([str(BIN), "model", "pack", str(src), "-o", str(pkg), "--name", f"whisper-{model}"], check=True, stdout=subprocess.DEVNULL)
        s3_port, api_port = free_port(), free_port()
        procs.append(subprocess.Popen([str(VENV / "bin/moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(s3_port)
        aws = {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}"}
        subprocess.run([str(VENV / "bin/python"), "-c", "import boto3,os; boto3.client('s3').create_bucket(Bucket='models')"], env={**os.environ, **aws}, check=True)
        subprocess.run([str(BIN), "model", "push", str(pkg), "s3://models/m"], env={**os.environ, **aws, "HARKEN_CACHE_DIR": str(tmp / "push")}, check=True, stdout=subprocess.DEVNULL)
        rows = []
        for label, extra in [
            ("S3, empty /tmp (cold)", {**aws, "HARKEN_MODEL_URI": "s3://models/m", "HARKEN_CACHE_DIR": str(tmp / "tmp-cold")}),
            ("S3, /tmp cache warm", {**aws, "HARKEN_MODEL_URI": "s3://models/m", "HARKEN_CACHE_DIR": str(tmp / "tmp-cold")}),
            ("bundled in the zip", {"HARKEN_MODEL_URI": str(pkg), "HARKEN_CACHE_DIR": str(tmp / "tmp-bundled")}),
        ]:
            procs.append(subprocess.Popen(["python3", str(ROOT / "tests/lambda/runtime_api.py"), str(api_port)]))
            wait_port(api_port)
            rows.append((label, run_function(tmp, api_port, extra, clip)))
            procs.pop().terminate()
            time.sleep(0.3)
            api_port = free_port()
        print(f"model whisper-{model}, 20-s clip, {os.cpu_count()} cores, direct invocations (base64 WAV)")
        print(f"{'model source':<24} {'init':>8} {'resolve':>8} {'download':>9} {'load':>7} {'1st call':>9} {'2nd call':>9} {'keep-warm':>10}")
        for label, r in rows:
            p = r["phases"]
            print(f"{label:<24} {r['init_ms']:7.0f}ms {p.get('resolve_ms', 0):7}ms {p.get('download_ms', 0):8}ms {p.get('load_ms', 0):6}ms "
                  f"{r['first_ms']:8.0f}ms {r['second_ms']:8.0f}ms {r['keepwarm_ms']:9.1f}ms")
        print("transcript:", rows[0][1]["text"][:100])
        print(json.dumps({label: {k: v for k, v in r.items() if k != "text"} for label, r in rows}))
    finally:
        for p in procs:
            p.terminate()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
