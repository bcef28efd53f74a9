// Package bridges holds the bridge's contracts (DESIGN §7): the
// checkpoint records it keeps on the compacted _butter.checkpoints topic
// and the names derived from a bridge (its transactional id, its
// consumer group), so every reader and tool spells them once.
package bridges

import (
	"time"

	"github.com/buttercompass/butter/proto/topics"
)

// Checkpoint is the position of a vCenter source: the JSON value of the
// _butter.checkpoints record whose key is CheckpointKey. It is written in
// the same Kafka transaction as the events it covers, so a committed
// checkpoint never runs ahead of the stream, nor behind it.
type Checkpoint struct {
	// InstanceUUID is the vCenter's About.InstanceUuid: keys are only
	// comparable within one instance, so a checkpoint of another one
	// (a reinstalled vCenter behind the same URL) is not resumed from.
	InstanceUUID string `json:"instanceUuid"`
	// LastKey is the key of the last event read (produced, or filtered
	// out); on resume keys up to it are skipped.
	LastKey int32 `json:"lastKey"`
	// LastCreatedTime is that event's CreatedTime; on resume the collector
	// starts a little before it.
	LastCreatedTime time.Time `json:"lastCreatedTime"`
	// Updated is when the checkpoint was written, by the bridge's clock.
	Updated time.Time `json:"updated"`
}

// CheckpointKey is the record key of a bridge's checkpoint.
func CheckpointKey(deployment, bridge string) string { return deployment + "/" + bridge }

// OwnerKey is the record key of the marker a source writes, with its
// transactional id, when it starts: committing it fences any earlier
// instance of the source, and reading up to it reads every checkpoint
// committed before.
func OwnerKey(deployment, bridge string) string { return deployment + "/" + bridge + "/owner" }

// Prefix starts every consumer group and transactional id of the bridge
// service (its principal is granted these prefixes, access.BridgeUser).
const Prefix = "butter-bridge"

// TransactionalID is the transactional id of a source bridge: one per
// bridge, so a restarted or second bridge replica fences the first.
func TransactionalID(ns topics.Namespace, deployment, bridge string) string {
	return ns.Topic(Prefix + "." + deployment + "." + bridge)
}

// SinkGroup is the consumer group of a sink bridge: its replicas share
// the stream's partitions.
func SinkGroup(ns topics.Namespace, deployment, bridge string) string {
	return ns.Topic(Prefix + "." + deployment + "." + bridge)
}

// OwnersGroup is the group bridge replicas join to elect the one running
// the vCenter sources: the member assigned partition 0 of
// _butter.checkpoints runs them.
func OwnersGroup(ns topics.Namespace) string { return ns.Topic(Prefix + ".owners") }

// CloudEvents of the vCenter source (compatible with VEBA and the Tanzu
// VSphereSource).
const (
	// TypePrefix and TypeSuffix surround the event class (or EventTypeId
	// of an EventEx/ExtendedEvent): com.vmware.vsphere.VmPoweredOnEvent.v0.
	TypePrefix = "com.vmware.vsphere."
	TypeSuffix = ".v0"
	// ExtEventClass is event, eventex or extendedevent.
	ExtEventClass = "eventclass"
	// ExtAPIVersion is the vCenter's API version.
	ExtAPIVersion = "vsphereapiversion"
	// ExtInstanceUUID is the vCenter's About.InstanceUuid.
	ExtInstanceUUID = "vcenterinstanceuuid"
)

// EventType is the CloudEvents type of a vSphere event named name.
func EventType(name string) string { return TypePrefix + name + TypeSuffix }
