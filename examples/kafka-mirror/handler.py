"""check marks an order valid when it has an id and a positive total."""


def check(event, context):
    order = event["data"] or {}
    return {"id": order.get("id"), "valid": bool(order.get("id")) and order.get("total", 0) > 0}
