"""Mixed load against a running `harken serve` for a fixed time, sampling the process as it goes.

The mix (per client, chosen at random each time): OpenAI transcriptions of files from 1 s to
10 min in every response format, with word timestamps and hot words sometimes; SageMaker
/invocations with raw audio; 5 % bad inputs (random bytes, a truncated WAV, text, an empty file,
a wrong field); clients that disconnect mid-upload and mid-response; cheap GETs. Every 10 s the
server's RSS, open file descriptors and threads are sampled from /proc.

Writes to --out: samples.csv, requests.csv, summary.json (per-minute latency percentiles,
statuses, the verdict). Exit status 1 when the verdict fails:
  - RSS after warm-up stays within +-10 % of its post-warm-up median, and its last-quarter median
    is within 10 % of its first-quarter median (no creep);
  - open fds and threads do not grow (last-quarter median <= first-quarter median + 2);
  - no 5xx other than 503 (the queue's refusal), and every bad input gets a 4xx.

    python3 bench/soak_load.py --url http://127.0.0.1:PORT --pid PID --files DIR --duration 3600
"""

import argparse
import csv
import http.client
import json
import os
import random
import socket
import statistics
import sys
import threading
import time
import urllib.parse

FORMATS = ["json", "text", "srt", "vtt", "verbose_json"]


def multipart(fields, file_bytes, filename):
    b = "soakboundary8f1e"
    out = bytearray()
    for k, v in fields:
        out += f'--{b}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
    if file_bytes is not None:
        out += (f'--{b}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                f"Content-Type: application/octet-stream\r\n\r\n").encode()
        out += file_bytes + b"\r\n"
    out += f"--{b}--\r\n".encode()
    return f"multipart/form-data; boundary={b}", bytes(out)


class Load:
    def __init__(self, a):
        self.a = a
        u = urllib.parse.urlparse(a.url)
        self.host, self.port = u.hostname, u.port
        self.files = []  # (seconds, name, bytes)
        for name in sorted(os.listdir(a.files)):
            secs = float(name.split("s_", 1)[0])
            with open(os.path.join(a.files, name), "rb") as f:
                self.files.append((secs, name, f.read()))
        if not self.files:
            sys.exit(f"soak: no files in {a.files}")
        # Short files often, long ones rarely: about a third of the audio is in the long files.
        self.weights = [1.0 / max(s, 1.0) ** 0.5 for s, _, _ in self.files]
        self.lock = threading.Lock()
        self.requests = []
        self.samples = []
        self.stop_at = time.monotonic() + a.duration
        self.t0 = time.monotonic()

    def record(self, kind, status, start, audio_s, note=""):
        with self.lock:
            self.requests.append((round(start - self.t0, 3), kind, status,
                                  round(time.monotonic() - start, 4), audio_s, note))

    def send(self, method, path, body=None, headers=None, timeout=900):
        c = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            c.request(method, path, body, headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, data
        finally:
            c.close()

    def pick(self, max_s=None):
        choices = [(f, w) for f, w in zip(self.files, self.weights) if max_s is None or f[0] <= max_s]
        return random.choices([f for f, _ in choices], [w for _, w in choices])[0]

    def openai(self):
        secs, name, data = self.pick()
        fmt = random.choice(FORMATS)
        fields = [("model", "whisper-1"), ("response_format", fmt), ("language", "en")]
        if fmt == "verbose_json" and random.random() < 0.5:
            fields.append(("timestamp_granularities[]", "word"))
        if random.random() < 0.2:
            fields.append(("hotwords", "Tuesday, Harken"))
        ctype, body = multipart(fields, data, name)
        start = time.monotonic()
        try:
            status, _ = self.send("POST", "/v1/audio/transcriptions", body, {"Content-Type": ctype})
        except OSError as e:
            status = f"error:{type(e).__name__}"
        self.record(f"openai-{fmt}", status, start, secs, name)

    def sagemaker(self):
        secs, name, data = self.pick(max_s=180)
        if not name.endswith(".wav"):
            secs, name, data = next(f for f in self.files if f[1].endswith(".wav"))
        accept = random.choice(["application/json", "text/plain", "text/vtt", "application/x-subrip"])
        start = time.monotonic()
        try:
            status, _ = self.send("POST", "/invocations", data,
                                  {"Content-Type": "audio/wav", "Accept": accept})
        except OSError as e:
            status = f"error:{type(e).__name__}"
        self.record("sagemaker", status, start, secs, name)

    def bad(self):
        kind = random.choice(["random", "truncated", "text", "empty", "nofile", "badformat"])
        _, _, wav = next(f for f in self.files if f[1].endswith(".wav"))
        if kind == "random":
            ctype, body = multipart([], os.urandom(random.randint(10, 200_000)), "x.wav")
        elif kind == "truncated":
            ctype, body = multipart([], wav[:random.randint(20, 60)], "x.wav")
        elif kind == "text":
            ctype, body = multipart([], b"this is not audio\n" * 100, "x.txt")
        elif kind == "empty":
            ctype, body = multipart([], b"", "x.wav")
        elif kind == "nofile":
            ctype, body = multipart([("model", "whisper-1")], None, "")
        else:
            ctype, body = multipart([("response_format", "docx")], wav[:2000], "x.wav")
        start = time.monotonic()
        try:
            status, _ = self.send("POST", "/v1/audio/transcriptions", body, {"Content-Type": ctype})
        except OSError as e:
            status = f"error:{type(e).__name__}"
        self.record(f"bad-{kind}", status, start, 0.0)

    def vanish(self, kind, whole_body):
        """Send a transcription request raw — all of it, or the headers and part of the body —
        then close the socket without reading the answer."""
        secs, name, data = self.pick()
        ctype, body = multipart([("model", "whisper-1")], data, name)
        sent = body if whole_body else body[: random.randint(0, max(len(body) // 2, 1))]
        start = time.monotonic()
        s = socket.create_connection((self.host, self.port), timeout=30)
        try:
            s.sendall((f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n"
                       f"Content-Length: {len(body)}\r\n\r\n").encode() + sent)
            if whole_body:
                time.sleep(random.uniform(0.05, 1.0))
        except OSError:
            pass
        finally:
            s.close()
        self.record(kind, "closed", start, secs if whole_body else 0.0)

    def cut_upload(self):
        self.vanish("cut-upload", whole_body=False)

    def cut_response(self):
        """A whole request, then gone before the answer."""
        self.vanish("cut-response", whole_body=True)

    def cheap(self):
        path = random.choice(["/ping", "/v1/models", "/metrics", "/healthz"])
        start = time.monotonic()
        try:
            status, _ = self.send("GET", path)
        except OSError as e:
            status = f"error:{type(e).__name__}"
        self.record("get", status, start, 0.0, path)

    def client(self):
        actions = [(self.openai, 55), (self.sagemaker, 15), (self.bad, 5), (self.cut_upload, 5),
                   (self.cut_response, 5), (self.cheap, 15)]
        while time.monotonic() < self.stop_at:
            act = random.choices([a for a, _ in actions], [w for _, w in actions])[0]
            act()
            if act is self.openai or act is self.sagemaker:
                continue
            time.sleep(0.05)

    def sample(self, pid):
        def read():
            with open(f"/proc/{pid}/status") as f:
                st = dict(line.split(":", 1) for line in f if ":" in line)
            rss = int(st["VmRSS"].split()[0]) / 1024
            threads = int(st["Threads"])
            fds = len(os.listdir(f"/proc/{pid}/fd"))
            return rss, fds, threads
        while True:
            try:
                rss, fds, threads = read()
            except OSError:
                return
            with self.lock:
                self.samples.append((round(time.monotonic() - self.t0, 1), round(rss, 1), fds, threads))
            if time.monotonic() >= self.stop_at:
                return
            time.sleep(min(10.0, max(self.stop_at - time.monotonic(), 0.1)))


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else None


def verdict(load, a):
    s = load.samples
    warm = max(60.0, 0.1 * a.duration)
    post = [x for x in s if x[0] >= warm] or s
    q = max(1, len(post) // 4)
    first, last = post[:q], post[-q:]
    rss = [x[1] for x in post]
    med = statistics.median(rss)
    checks = {}
    checks["rss_within_10pct_of_median"] = (max(rss) <= med * 1.10 and min(rss) >= med * 0.90,
                                            f"{min(rss):.0f}-{max(rss):.0f} MiB around {med:.0f}")
    r1, r2 = statistics.median(x[1] for x in first), statistics.median(x[1] for x in last)
    checks["rss_no_creep"] = (r2 <= r1 * 1.10, f"first quarter {r1:.0f} MiB, last {r2:.0f} MiB")
    for i, name in ((2, "fds"), (3, "threads")):
        a1, a2 = statistics.median(x[i] for x in first), statistics.median(x[i] for x in last)
        checks[f"{name}_no_growth"] = (a2 <= a1 + 2, f"first quarter {a1:g}, last {a2:g}, max {max(x[i] for x in s)}")
    statuses = {}
    for r in load.requests:
        statuses[str(r[2])] = statuses.get(str(r[2]), 0) + 1
    bad5xx = {k: v for k, v in statuses.items() if k.isdigit() and int(k) >= 500 and k != "503"}
    checks["no_5xx_but_503"] = (not bad5xx, f"{bad5xx or 'none'}; 503: {statuses.get('503', 0)}")
    bad_answers = [r for r in load.requests if r[1].startswith("bad-")]
    wrong = [r for r in bad_answers if not (isinstance(r[2], int) and 400 <= r[2] < 500)]
    checks["bad_inputs_get_4xx"] = (not wrong, f"{len(bad_answers)} bad inputs, {len(wrong)} without a 4xx")
    transport = {k: v for k, v in statuses.items() if k.startswith("error:")}
    checks["no_transport_errors"] = (not transport, f"{transport or 'none'}")
    return checks, statuses


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--files", required=True)
    ap.add_argument("--duration", type=float, default=3600)
    ap.add_argument("--clients", type=int, default=3)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ci", action="store_true",
                    help="a few minutes are too short to judge RSS and thread plateaus: report "
                         "them, fail only on statuses, transport errors and fd growth")
    a = ap.parse_args()
    random.seed(a.seed)
    os.makedirs(a.out, exist_ok=True)
    load = Load(a)
    sampler = threading.Thread(target=load.sample, args=(a.pid,), daemon=True)
    sampler.start()
    clients = [threading.Thread(target=load.client, daemon=True) for _ in range(a.clients)]
    last_report = time.monotonic()
    for c in clients:
        c.start()
    while any(c.is_alive() for c in clients):
        time.sleep(1)
        if time.monotonic() - last_report >= 60:
            last_report = time.monotonic()
            with load.lock:
                n, smp = len(load.requests), load.samples[-1] if load.samples else None
            print(f"soak: {time.monotonic() - load.t0:6.0f} s, {n} requests, "
                  f"RSS {smp[1] if smp else '?'} MiB, fds {smp[2] if smp else '?'}, "
                  f"threads {smp[3] if smp else '?'}", flush=True)
    sampler.join(timeout=15)
    wall = time.monotonic() - load.t0
    with open(os.path.join(a.out, "samples.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["t_s", "rss_mib", "fds", "threads"])
        w.writerows(load.samples)
    with open(os.path.join(a.out, "requests.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["t_s", "kind", "status", "latency_s", "audio_s", "note"])
        w.writerows(load.requests)
    minutes = []
    for m in range(int(wall // 60) + 1):
        lat = [r[3] for r in load.requests
               if m * 60 <= r[0] < (m + 1) * 60 and r[2] == 200 and (r[1].startswith("openai") or r[1] == "sagemaker")]
        rtf = [r[3] / r[4] for r in load.requests
               if m * 60 <= r[0] < (m + 1) * 60 and r[2] == 200 and r[4] >= 20]
        minutes.append({"minute": m, "n": len(lat), "p50_s": pct(lat, 50), "p95_s": pct(lat, 95),
                        "p99_s": pct(lat, 99), "long_file_latency_per_audio_s_p50": pct(rtf, 50)})
    checks, statuses = verdict(load, a)
    advisory = {"rss_within_10pct_of_median", "rss_no_creep", "threads_no_growth"} if a.ci else set()
    ok = all(v[0] for k, v in checks.items() if k not in advisory)
    audio = sum(r[4] for r in load.requests if r[2] == 200)
    summary = {"duration_s": round(wall, 1), "clients": a.clients, "requests": len(load.requests),
               "audio_seconds_transcribed": round(audio, 1), "statuses": statuses,
               "checks": {k: {"ok": v[0], "detail": v[1]} for k, v in checks.items()},
               "verdict": "pass" if ok else "fail", "per_minute": minutes}
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(f"soak: {len(load.requests)} requests in {wall:.0f} s, {audio:.0f} audio s transcribed; "
          f"statuses {statuses}")
    for k, (good, detail) in checks.items():
        tag = "ok  " if good else ("info" if k in advisory else "FAIL")
        print(f"soak: {tag} {k}: {detail}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
