"""on_power turns a vSphere VM power event into {vm, power, at}."""


def on_power(event, context):
    # type is com.vmware.vsphere.<EventClass>.v0; data is the vSphere event.
    power = "on" if event["type"].endswith("VmPoweredOnEvent.v0") else "off"
    vm = event["data"].get("vm", {}).get("name")
    context.log("vm", vm, "powered", power, "event key", event["id"])
    return {"vm": vm, "power": power, "at": event["time"]}
