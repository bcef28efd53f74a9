package process

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/buttercompass/butter/proto/kit"
)

// Stop sends SIGTERM to the instance's process group, SIGKILL after the
// grace period, and forgets the instance. A pool member is stopped
// through its member file instead (stopMember).
func (r *Runtime) Stop(ctx context.Context, id string) error {
	r.mu.Lock()
	p := r.procs[id]
	if p == nil {
		p = r.adopt(id)
	}
	r.mu.Unlock()
	if p == nil {
		return nil
	}
	if p.pool != nil {
		return r.stopMember(ctx, p)
	}
	select {
	case <-p.done:
	default:
		if err := r.terminate(ctx, p, "instance ignored SIGTERM, killing it", "instance", id, kit.KeyDeployment, p.rec.Deployment); err != nil {
			return fmt.Errorf("stop instance %s: %w", id, err)
		}
		r.log.Info("instance stopped", kit.KeyDeployment, p.rec.Deployment, "instance", id)
	}
	r.mu.Lock()
	delete(r.procs, id)
	r.forget(id)
	r.mu.Unlock()
	return nil
}

// forget removes an instance's files and cgroups. Called with r.mu held.
func (r *Runtime) forget(id string) {
	var rec record
	if b, err := os.ReadFile(r.recordPath(id)); err == nil {
		_ = json.Unmarshal(b, &rec)
	}
	r.forgetRecord(id, rec)
}

// forgetRecord is forget with the record at hand.
func (r *Runtime) forgetRecord(id string, rec record) {
	removeCgroups(rec.Cgroups)
	if rec.Pool != "" {
		os.Remove(r.memberPath(rec.Pool, id))
		os.Remove(r.memberExitPath(rec.Pool, id))
	}
	os.Remove(r.readyPath(id))
	os.Remove(r.recordPath(id))
	os.Remove(r.logPath(id))
}

// terminate sends SIGTERM to p's process group and waits for it to exit,
// sending SIGKILL (and logging warn with args) after the grace period, or
// at once when ctx ends; it returns ctx's error if p is not gone by then.
func (r *Runtime) terminate(ctx context.Context, p *proc, warn string, args ...any) error {
	killGroup(p.rec.PID, syscall.SIGTERM)
	grace := time.NewTimer(r.cfg.Grace)
	defer grace.Stop()
	select {
	case <-p.done:
		return nil
	case <-grace.C:
		r.log.Warn(warn, args...)
		killGroup(p.rec.PID, syscall.SIGKILL)
	case <-ctx.Done():
		killGroup(p.rec.PID, syscall.SIGKILL)
	}
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
