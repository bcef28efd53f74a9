"""summarise keeps what a push notification is about."""


def summarise(event, context):
    body = event["data"] or {}
    return {"type": event["type"], "ref": body.get("ref"), "commits": len(body.get("commits", []))}
