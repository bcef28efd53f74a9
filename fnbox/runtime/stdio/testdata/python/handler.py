"""Functions for the stdio unit tests: crashing the host, binary data."""
import base64
import os


def crash(event, context):
    os._exit(3)


def bytes_(event, context):
    return base64.b64decode(event.data)[::-1]


def echo(event, context):
    return dict(event)


def env(event, context):
    return {"fixture": os.environ.get("FIXTURE_ENV"), "spec": os.environ.get("SPEC_ENV")}


def spin(event, context):
    while True:
        pass


def modules(event, context):
    import sys
    return {"asyncio": "asyncio" in sys.modules}


async def _later(v):
    return v


def awaitable(event, context):
    # A plain function that returns an awaitable: its result is awaited.
    return _later({"awaited": event.data})


def sleepy(event, context):
    import time
    time.sleep(event.data)
    return {"slept": event.data}


def gate(event, context):
    # Blocks until the release call has run: two plain calls must run at
    # once, even when submitted together with one idle worker.
    import threading
    g = globals().setdefault("_gate", threading.Event())
    if event.data == "release":
        g.set()
        return "released"
    if not g.wait(10):
        raise TimeoutError("the release call never ran beside this one")
    return "passed"


def emits(event, context):
    # A plain function waiting on a context call's answer.
    try:
        context.emit("anywhere", {"n": event.data})
        return "emitted"
    except Exception as e:  # noqa: BLE001 - the refusal is the answer
        return "refused: " + type(e).__name__
