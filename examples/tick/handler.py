"""tick runs on the timer: every tick event carries the time it was due."""


def tick(event, context):
    data = event["data"]
    context.log("tick", data["schedule"], "due", data["scheduledTime"], "fired", data["firedTime"])
    return {"scheduledTime": data["scheduledTime"]}
