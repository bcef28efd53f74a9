"""Conformance fixture for http: `python3 -u handler.py <case>` serves one
suite case (see runtime.Conformance) on $PORT. The event arrives in
CloudEvents HTTP binary mode (a batch as application/cloudevents-batch+json),
the answer's body is the result, and the context API is the HTTP endpoint in
$BUTTER_CONTEXT_URL, called with the request's Butter-Invocation header."""
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CASE = sys.argv[1]


def call(invocation, op, body):
    req = urllib.request.Request(
        os.environ["BUTTER_CONTEXT_URL"] + "/" + op,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Butter-Invocation": invocation},
        method="POST",
    )
    with urllib.request.urlopen(req) as resp:
        data = resp.read()
        return json.loads(data) if data else None


def parse_time(s):
    # RFC 3339 with up to nanoseconds; fromisoformat before 3.11 takes
    # neither Z nor more than 6 fraction digits.
    m = re.match(r"(.*?)(\.\d+)?(Z|[+-]\d\d:\d\d)$", s)
    frac = (m.group(2) or ".0")[:7].ljust(7, "0")
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    return datetime.fromisoformat(m.group(1) + frac + zone)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass  # stderr is the function's log: keep it for the cases

    def answer(self, status, body=b"", content_type="application/json"):
        self.send_response(status)
        if body:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def result(self, v):
        self.answer(200, json.dumps(v).encode())

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        inv = self.headers.get("Butter-Invocation", "")
        if self.headers.get("Content-Type") == "application/cloudevents-batch+json":
            data = [e.get("data") for e in json.loads(body)]
        else:
            data = json.loads(body) if body else None
        if CASE == "echo":
            self.result({"echo": data})
        elif CASE == "text":
            self.answer(200, f"hello {data['name']}".encode(), "text/plain; charset=utf-8")
        elif CASE == "nothing":
            self.answer(204)
        elif CASE == "trace":
            self.result({"traceparent": self.headers.get("traceparent")})
        elif CASE == "emit":
            call(inv, "emit", {"stream": "audit", "data": {"seen": data}, "type": "com.example.audit",
                               "subject": "s1", "key": "k1"})
            self.result({"emitted": True})
        elif CASE == "emit-undeclared":
            try:
                call(inv, "emit", {"stream": "secret", "data": {"leak": True}})
                self.result({"refused": False})
            except urllib.error.HTTPError as e:
                self.result({"refused": True, "error": json.loads(e.read())["error"]})
        elif CASE == "request":
            self.result({"answer": call(inv, "request", {"stream": "questions", "data": data})})
        elif CASE == "fail":
            print("some earlier diagnostics", file=sys.stderr)
            self.answer(500, json.dumps({"error": f"boom: {data['why']}"}).encode())
        elif CASE == "slow":
            deadline = self.headers["Butter-Deadline"]
            remaining = parse_time(deadline).timestamp() * 1000 - time.time() * 1000
            time.sleep(data["sleepMs"] / 1000)
            self.result({"remainingMs": remaining, "deadline": deadline})
        elif CASE == "log":
            call(inv, "log", {"level": "info", "message": f"log-line {data['tag']}"})
            print(f"stdout-line {data['tag']}")
            print(f"stderr-line {data['tag']}", file=sys.stderr)
            self.answer(204)
        elif CASE == "batch":
            self.result({"items": data})
        else:
            self.answer(404, f"unknown case {CASE}".encode(), "text/plain")


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
