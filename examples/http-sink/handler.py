"""alert turns an order into what the pager endpoint gets."""


def alert(event, context):
    order = event["data"] or {}
    total = order.get("total", 0)
    return {"order": order.get("id"), "total": total, "level": "high" if total >= 100 else "low"}
