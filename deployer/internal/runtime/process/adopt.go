package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/buttercompass/butter/deployer/internal/runtime"
	"github.com/buttercompass/butter/proto/kit"
)

// List reports every recorded instance: its own children from memory,
// earlier ones adopted when their pid is alive with the recorded start
// time, and cleaned up otherwise. The first List also kills fnbox
// processes of this data directory that have no record (started by a
// deployer that crashed before writing it).
func (r *Runtime) List(_ context.Context) ([]runtime.Instance, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	entries, err := os.ReadDir(r.instancesDir())
	if err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	r.adoptPools() // first, so that members find theirs
	var out []runtime.Instance
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		p := r.procs[id]
		if p == nil {
			p = r.adopt(id)
			if p == nil {
				continue
			}
		}
		out = append(out, r.instance(p))
	}
	r.checkPools()
	if !r.swept {
		r.swept = true
		r.sweep()
	}
	return out, nil
}

// adopt takes over a recorded instance of an earlier run, or cleans up
// its record when the process is gone. Called with r.mu held.
func (r *Runtime) adopt(id string) *proc {
	var rec record
	b, err := os.ReadFile(r.recordPath(id))
	if err == nil {
		err = json.Unmarshal(b, &rec)
	}
	if err == nil && rec.Pool != "" {
		return r.adoptMember(rec)
	}
	if err != nil || rec.PID <= 0 || !sameProcess(rec.PID, rec.StartTicks) {
		r.log.Info("instance gone, forgetting it", "instance", id, kit.KeyDeployment, rec.Deployment, "pid", rec.PID)
		r.forget(id)
		return nil
	}
	if want := r.cfg.Kafka.Brokers; !sameBrokers(rec.Brokers, want) {
		// Started for another cluster (a deployer before this one ran
		// against other brokers): it must not go on with old code.
		r.log.Warn("killing instance of another cluster", "instance", id, kit.KeyDeployment, rec.Deployment,
			"pid", rec.PID, "brokers", strings.Join(rec.Brokers, ","))
		killGroup(rec.PID, syscall.SIGKILL)
		r.forgetRecord(id, rec)
		return nil
	}
	p := r.watch(rec, r.logPath(id))
	r.procs[id] = p
	r.log.Info("instance adopted", kit.KeyDeployment, rec.Deployment, "instance", id, "pid", rec.PID)
	return p
}

// watch returns the adopted process of rec, tailing its log at logPath
// from its current end.
func (r *Runtime) watch(rec record, logPath string) *proc {
	p := &proc{rec: rec, done: make(chan struct{}), adopted: true}
	go func() {
		// Not our child: no Wait, so watch /proc until it is gone.
		_ = kit.Poll(context.Background(), 250*time.Millisecond, func() bool { return !sameProcess(rec.PID, rec.StartTicks) })
		p.err = errors.New("fnbox exited (adopted process, exit status unknown)")
		close(p.done)
	}()
	var from int64
	if st, err := os.Stat(logPath); err == nil {
		from = st.Size()
	}
	r.tail(p, logPath, from)
	return p
}

// sweep kills unrecorded fnbox processes whose --code lies in this data
// directory, and unrecorded pools of it, and removes unrecorded member
// files. Called with r.mu held.
func (r *Runtime) sweep() {
	prefix := filepath.Join(r.dataDir, "deployments") + string(filepath.Separator)
	known := map[int]bool{}
	for _, p := range r.procs {
		known[p.rec.PID] = true
	}
	for _, p := range r.pools {
		known[p.rec.PID] = true
	}
	r.sweepMembers()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || known[pid] || pid == os.Getpid() {
			continue
		}
		args := cmdline(pid)
		if r.isOrphanPool(args) {
			r.log.Warn("killing orphan fnbox pool without a record", "pid", pid, "args", strings.Join(args, " "))
			killGroup(pid, syscall.SIGKILL)
			_ = syscall.Kill(pid, syscall.SIGKILL)
			continue
		}
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "--code" && strings.HasPrefix(args[i+1], prefix) && hasArg(args, "--instance") {
				r.log.Warn("killing orphan fnbox without a record", "pid", pid, "code", args[i+1])
				killGroup(pid, syscall.SIGKILL)
				_ = syscall.Kill(pid, syscall.SIGKILL) // in case it leads no group
				break
			}
		}
	}
}

func hasArg(args []string, a string) bool {
	for _, x := range args {
		if x == a {
			return true
		}
	}
	return false
}
