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
		killGroup(p.rec.PID, syscall.SIGTERM)
		grace := time.NewTimer(r.cfg.Grace)
		defer grace.Stop()
		select {
		case <-p.done:
		case <-grace.C:
			r.log.Warn("instance ignored SIGTERM, killing it", "instance", id, kit.KeyDeployment, p.rec.Deployment)
			killGroup(p.rec.PID, syscall.SIGKILL)
		case <-ctx.Done():
			killGroup(p.rec.PID, syscall.SIGKILL)
		}
		select {
		case <-p.done:
		case <-ctx.Done():
			return fmt.Errorf("stop instance %s: %w", id, ctx.Err())
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
