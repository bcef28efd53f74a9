"""Conformance fixture: one function per suite case (see runtime.Conformance)."""
import asyncio
import sys


def echo(event, context):
    return {"echo": event.data}


async def text(event, context):
    return f"hello {event.data['name']}"


def nothing(event, context):
    pass


def trace(event, context):
    return {"traceparent": context.traceparent}


async def emit(event, context):
    await context.emit("audit", {"seen": event.data}, {"type": "com.example.audit", "subject": "s1", "key": "k1"})
    return {"emitted": True}


def emit_undeclared(event, context):
    # A sync handler: emit blocks and raises instead of returning an awaitable.
    try:
        context.emit("secret", {"leak": True})
        return {"refused": False}
    except Exception as e:  # noqa: BLE001 - the refusal is what is tested
        return {"refused": True, "error": str(e)}


async def request(event, context):
    return {"answer": await context.request("questions", event.data)}


def fail(event, context):
    raise ValueError(f"boom: {event.data['why']}")


async def slow(event, context):
    seen = {"remainingMs": context.remaining_ms(), "deadline": context.deadline.isoformat()}
    await asyncio.sleep(event.data["sleepMs"] / 1000)
    return seen


def log(event, context):
    context.log("log-line", event.data["tag"])
    print(f"stdout-line {event.data['tag']}")
    print(f"stderr-line {event.data['tag']}", file=sys.stderr)


def batch(events, context):
    return {"items": [e.data for e in events]}
