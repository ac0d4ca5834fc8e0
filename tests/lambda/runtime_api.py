#!/usr/bin/env python3
"""The AWS Lambda Runtime API (version 2018-06-01), as documented in the Lambda developer guide
("Using the Lambda runtime API for custom runtimes"), on 127.0.0.1 for tests.

No official emulator is installable here (the RIE ships only as a GitHub release binary and in
AWS base images). This one implements the documented endpoints exactly as real Lambda answers
them: GET /runtime/invocation/next blocks until an event, with the Lambda-Runtime-* headers and
an epoch-millisecond deadline; POST .../response, .../error and /runtime/init/error answer 202.

A test drives it through a control API that is not part of Lambda:
  POST /test/invoke        body = event JSON; blocks until the function answers; returns
                           {"result": <json or null>, "error": <json or null>, "ms": <float>}
  GET  /test/init-error    the init error the function reported (404 if none)
  GET  /test/ready         {"first_next_unix": t}: when the function first asked for an event
                           (the end of its init phase), 404 before

  python3 runtime_api.py PORT
"""
import json
import queue
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/2018-06-01/runtime"
events = queue.Queue()
pending = {}  # request id -> (threading.Event, dict)
init_error = {}
first_next = {}
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def reply(self, code, payload=b"", headers=None):
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):
        if self.path == PREFIX + "/invocation/next":
            first_next.setdefault("first_next_unix", time.time())
            rid, payload = events.get()
            self.reply(200, payload, {
                "Content-Type": "application/json",
                "Lambda-Runtime-Aws-Request-Id": rid,
                "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 900_000),
                "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:123456789012:function:harken",
                "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000;Sampled=0",
            })
        elif self.path == "/test/ready":
            if first_next:
                self.reply(200, json.dumps(first_next).encode(), {"Content-Type": "application/json"})
            else:
                self.reply(404)
        elif self.path == "/test/init-error":
            if init_error:
                self.reply(200, json.dumps(init_error).encode(), {"Content-Type": "application/json"})
            else:
                self.reply(404)
        else:
            self.reply(404)

    def do_POST(self):
        data = self.body()
        if self.path == "/test/invoke":
            rid = str(uuid.uuid4())
            done = threading.Event()
            slot = {}
            with lock:
                pending[rid] = (done, slot)
            start = time.perf_counter()
            events.put((rid, data))
            done.wait()
            slot["ms"] = (time.perf_counter() - start) * 1000
            self.reply(200, json.dumps(slot).encode(), {"Content-Type": "application/json"})
            return
        if self.path == PREFIX + "/init/error":
            init_error.update({"error": json.loads(data or b"null"),
                               "type": self.headers.get("Lambda-Runtime-Function-Error-Type")})
            self.reply(202, b'{"status":"OK"}', {"Content-Type": "application/json"})
            return
        parts = self.path[len(PREFIX):].split("/") if self.path.startswith(PREFIX) else []
        # ['', 'invocation', id, 'response'|'error']
        if len(parts) == 4 and parts[1] == "invocation" and parts[3] in ("response", "error"):
            with lock:
                entry = pending.pop(parts[2], None)
            if entry is None:
                self.reply(400, b'{"errorType":"InvalidRequestID"}', {"Content-Type": "application/json"})
                return
            done, slot = entry
            value = json.loads(data) if data else None
            slot["result" if parts[3] == "response" else "error"] = value
            slot.setdefault("result", None)
            slot.setdefault("error", None)
            self.reply(202, b'{"status":"OK"}', {"Content-Type": "application/json"})
            done.set()
            return
        self.reply(404)


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    server.serve_forever()
