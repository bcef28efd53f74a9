"""Conformance fixture for exec: `python3 handler.py <case>` runs one suite
case (see runtime.Conformance); the event arrives on stdin as structured
CloudEvents JSON, the result leaves on stdout, and the context API is the
HTTP endpoint in $BUTTER_CONTEXT_URL. Run with python3 -S: start-up time
matters when fifty run at once."""
import json
import os
import sys
import time


def call(op, body):
    # Imported here: urllib costs most of the start-up time, and most cases
    # (and the 50 concurrent echoes) do not call the context API.
    import urllib.request

    req = urllib.request.Request(
        os.environ["BUTTER_CONTEXT_URL"] + "/" + op,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Butter-Invocation": os.environ["BUTTER_INVOCATION"]},
        method="POST",
    )
    with urllib.request.urlopen(req) as resp:
        data = resp.read()
        return json.loads(data) if data else None


def out(v):
    json.dump(v, sys.stdout)


def main():
    case = sys.argv[1]
    event = json.load(sys.stdin)
    if case == "echo":
        out({"echo": event["data"]})
    elif case == "text":
        sys.stdout.write(f"hello {event['data']['name']}\n")
    elif case == "nothing":
        pass
    elif case == "trace":
        out({"traceparent": os.environ.get("TRACEPARENT")})
    elif case == "emit":
        call("emit", {"stream": "audit", "data": {"seen": event["data"]}, "type": "com.example.audit",
                      "subject": "s1", "key": "k1"})
        out({"emitted": True})
    elif case == "emit-undeclared":
        try:
            call("emit", {"stream": "secret", "data": {"leak": True}})
            out({"refused": False})
        except Exception as e:  # urllib.error.HTTPError, imported lazily
            if not hasattr(e, "read"):
                raise
            out({"refused": True, "error": json.loads(e.read())["error"]})
    elif case == "request":
        out({"answer": call("request", {"stream": "questions", "data": event["data"]})})
    elif case == "fail":
        print("some earlier diagnostics", file=sys.stderr)
        print(f"boom: {event['data']['why']}", file=sys.stderr)
        sys.exit(1)
    elif case == "slow":
        deadline_ms = int(os.environ["BUTTER_DEADLINE_MS"])
        out({"remainingMs": deadline_ms - time.time() * 1000, "deadline": os.environ["BUTTER_DEADLINE"]})
        sys.stdout.flush()
        time.sleep(event["data"]["sleepMs"] / 1000)
    elif case == "log":
        call("log", {"level": "info", "message": f"log-line {event['data']['tag']}"})
        print(f"stderr-line {event['data']['tag']}", file=sys.stderr)
    elif case == "batch":
        out({"items": [e["data"] for e in event]})
    else:
        print(f"unknown case {case}", file=sys.stderr)
        sys.exit(2)


main()
