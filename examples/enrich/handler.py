"""enrich adds a total with tax to every order event."""


def enrich(event, context):
    order = event["data"]
    context.log("enriching order", event["id"])
    return {"order": order, "totalWithTax": round(order.get("total", 0) * 1.2, 2)}
