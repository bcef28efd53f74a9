package vcenter

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/buttercompass/butter/proto/bridges"
	"github.com/buttercompass/butter/proto/envelope"
)

// className is the Go (and vSphere) class of e, like VmPoweredOnEvent.
func className(e types.BaseEvent) string {
	t := reflect.TypeOf(e)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Name()
}

// eventName is what follows com.vmware.vsphere. in the type: the class,
// or the EventTypeId of the classes that carry their real name in it.
func eventName(e types.BaseEvent) (name, class string) {
	switch e := e.(type) {
	case *types.EventEx:
		return e.EventTypeId, "eventex"
	case *types.ExtendedEvent:
		return e.EventTypeId, "extendedevent"
	}
	return className(e), "event"
}

// entity is the managed object the event is about, as Type:value, for
// the record key: events of one object stay in order on one partition.
func entity(e types.BaseEvent) string {
	ev := e.GetEvent()
	var ref *types.ManagedObjectReference
	switch {
	case ev.Vm != nil:
		ref = &ev.Vm.Vm
	case ev.Host != nil:
		ref = &ev.Host.Host
	case ev.Ds != nil:
		ref = &ev.Ds.Datastore
	case ev.Net != nil:
		ref = &ev.Net.Network
	case ev.Dvs != nil:
		ref = &ev.Dvs.Dvs
	case ev.ComputeResource != nil:
		ref = &ev.ComputeResource.ComputeResource
	case ev.Datacenter != nil:
		ref = &ev.Datacenter.Datacenter
	}
	if ref == nil {
		return ""
	}
	return ref.Type + ":" + ref.Value
}

// about is what the source knows of its vCenter.
type about struct {
	url, instanceUUID, apiVersion string
}

// toEvent maps a vSphere event onto the CloudEvent VEBA and the Tanzu
// VSphereSource would send, and gives its Kafka key.
func toEvent(a about, e types.BaseEvent) (cloudevents.Event, error) {
	ev := e.GetEvent()
	name, class := eventName(e)
	ce := envelope.New(a.url, bridges.EventType(name))
	ce.SetID(strconv.Itoa(int(ev.Key)))
	ce.SetSubject(className(e))
	ce.SetTime(ev.CreatedTime.UTC())
	ce.SetExtension(bridges.ExtEventClass, class)
	ce.SetExtension(bridges.ExtAPIVersion, a.apiVersion)
	ce.SetExtension(bridges.ExtInstanceUUID, a.instanceUUID)
	key := entity(e)
	if key == "" {
		// No object: the vCenter itself, so such events keep their order too.
		key = "vcenter:" + a.instanceUUID
	}
	ce.SetExtension(envelope.ExtPartitionKey, key)
	data, err := json.Marshal(e)
	if err != nil {
		return ce, fmt.Errorf("encode event %d: %w", ev.Key, err)
	}
	if err := ce.SetData("application/json", json.RawMessage(data)); err != nil {
		return ce, fmt.Errorf("set data of event %d: %w", ev.Key, err)
	}
	return ce, nil
}
