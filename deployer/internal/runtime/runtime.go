// Package runtime is the container manager's contract with whatever runs
// fnbox instances: the process runtime (package process) for one machine,
// and next a Docker runtime through the Docker Engine API. The reconciler
// only ever starts, lists and stops instances, so a runtime is those three
// calls and a record of what it started that survives a deployer restart.
package runtime

import (
	"context"
	"errors"
	"slices"
	"time"
)

// Runtime starts, lists and stops fnbox instances.
//
// List must report instances started by an earlier run of the deployer
// (adopting them) and must never report one twice; an instance it cannot
// vouch for (its process gone, or the pid reused) is cleaned up and left
// out, so the reconciler replaces it.
type Runtime interface {
	// Start starts one instance and returns it running.
	Start(ctx context.Context, spec InstanceSpec) (Instance, error)
	// List returns every instance this runtime knows, running or exited.
	// An exited instance stays listed, with its error, until Stop.
	List(ctx context.Context) ([]Instance, error)
	// Stop stops the instance (gracefully, then forcibly) and forgets it.
	// Stopping an unknown or exited instance only forgets it.
	Stop(ctx context.Context, id string) error
	// Prune removes what the runtime keeps for a deployment version
	// (unpacked code, built programs) once keep says it is not wanted and
	// no instance runs it, so disk use follows what is deployed.
	Prune(ctx context.Context, keep func(deployment, version string) bool) error
}

// ErrUnknownInstance is returned (wrapped) for an id the runtime does not
// know.
var ErrUnknownInstance = errors.New("unknown instance")

// ErrBroken is returned (wrapped, with the reason) by Start for a version
// that cannot run: its code failed to load before, or its limits cannot be
// enforced. Only a new version can fix it, so it is not retried.
var ErrBroken = errors.New("cannot run this version")

// InstanceSpec is what to run: one replica of a deployment's version,
// hosting some of its functions.
type InstanceSpec struct {
	// Deployment and Version say which desired state this serves.
	Deployment, Version string
	// Replica is the instance's slot, 0-based: replica i hosts the
	// functions whose scale.min is above i.
	Replica int
	// Slot is the instance's fencing slot, passed to fnbox as
	// control.SlotFlag: unique among the deployment's live instances, and
	// the slot of the instance it replaces after a crash (see
	// control.TransactionalID).
	Slot int
	// Functions are the function names the instance consumes.
	Functions []string
	// Descriptor is the descriptor source, written as butter.yaml.
	Descriptor string
	// Code is the tar.gz code archive, nil for a descriptor alone.
	Code []byte
}

// State is an instance's state as the runtime sees it.
type State string

// Instance states.
const (
	StateRunning State = "running"
	StateExited  State = "exited"
)

// Instance is a started instance.
type Instance struct {
	ID         string    `json:"id"`
	Deployment string    `json:"deployment"`
	Version    string    `json:"version"`
	Replica    int       `json:"replica"`
	Slot       int       `json:"slot"`
	Functions  []string  `json:"functions"`
	PID        int       `json:"pid,omitempty"`
	Started    time.Time `json:"started"`
	State      State     `json:"state"`
	// Error says why an exited instance exited.
	Error string `json:"error,omitempty"`
	// Ready reports that the instance said it is serving (its code loaded,
	// its consumer groups joined); a running instance not yet ready is
	// starting.
	Ready bool `json:"ready"`
	// Permanent reports an exit that restarting cannot fix: the function
	// code failed to load.
	Permanent bool `json:"permanent,omitempty"`
	// OOMKills counts the processes of the instance (fnbox or a function
	// process) the kernel killed for going over its memory limit.
	OOMKills int `json:"oomKills,omitempty"`
	// Adopted reports an instance started by an earlier deployer run.
	Adopted bool `json:"adopted,omitempty"`
}

// Serves reports whether the instance runs exactly spec's version and
// functions.
func (i Instance) Serves(version string, functions []string) bool {
	return i.Version == version && slices.Equal(i.Functions, functions)
}
