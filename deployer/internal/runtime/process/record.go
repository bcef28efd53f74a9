package process

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/buttercompass/butter/deployer/internal/runtime"
)

// proc is one instance this runtime started or adopted.
type proc struct {
	rec  record
	done chan struct{} // closed when the process is gone
	err  error         // why it exited; set before done closes
	// permanent: it exited because the code failed to load.
	permanent bool
	// ready: its ready file exists (control.ReadyFileFlag).
	ready atomic.Bool
	// adopted processes are not our children: their exit is seen by
	// polling /proc, and their exit status is unknown.
	adopted bool
	// pool, for a member of a pool (pool.go), is the pool's process: a
	// member has no process of its own, and its done, err and permanent
	// are unused (see memberInstance).
	pool *proc
	// exited and exitErr are a member's end once seen: its exit file, or
	// its pool gone. Guarded by Runtime.mu.
	exited  bool
	exitErr string
	// stopping marks a pool being stopped for want of members.
	stopping bool
}

// record is <data>/instances/<id>.json.
type record struct {
	ID         string    `json:"id"`
	PID        int       `json:"pid"`
	StartTicks uint64    `json:"startTicks"`
	Started    time.Time `json:"started"`
	Deployment string    `json:"deployment"`
	Version    string    `json:"version"`
	Replica    int       `json:"replica"`
	Slot       int       `json:"slot"`
	Functions  []string  `json:"functions"`
	// Brokers it connects to: it is adopted only by a deployer of the
	// same cluster.
	Brokers []string `json:"brokers,omitempty"`
	// Cgroups are its cgroup directories (limits.go).
	Cgroups []string `json:"cgroups,omitempty"`
	// Pool is set on a member of a pool, and on the pool's own record:
	// the platform of the pool (pool.go). A member's PID and StartTicks
	// are its pool's.
	Pool string `json:"pool,omitempty"`
}

func (p *proc) instance(readyPath string) runtime.Instance {
	in := runtime.Instance{
		ID: p.rec.ID, Deployment: p.rec.Deployment, Version: p.rec.Version, Replica: p.rec.Replica, Slot: p.rec.Slot,
		Functions: p.rec.Functions, PID: p.rec.PID, Started: p.rec.Started, State: runtime.StateRunning, Adopted: p.adopted,
		OOMKills: oomKills(p.rec.Cgroups),
	}
	if !p.ready.Load() && fileExists(readyPath) {
		p.ready.Store(true)
	}
	in.Ready = p.ready.Load()
	select {
	case <-p.done:
		in.State, in.Error, in.Permanent = runtime.StateExited, p.err.Error(), p.permanent
	default:
	}
	return in
}

func writeRecord(path string, rec record) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("encode instance record: %w", err)
	}
	return writeFile(path, b)
}

// writeFile writes atomically: a crash leaves the old file or the new one.
func writeFile(path string, b []byte) error { return writeFilePerm(path, b, 0o644) }

// writeFilePerm is writeFile with the file's permissions.
func writeFilePerm(path string, b []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	os.Remove(tmp) // a leftover would keep its own permissions
	if err := os.WriteFile(tmp, b, perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
