package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/buttercompass/butter/deployer/internal/runtime"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/kit"
)

// The instances of isolation: shared deployments (docs/descriptor.md#isolation)
// run as members of a pool: one `fnbox --pool DIR` per platform, DIR being
// <data>/pools/<platform>/, which runs every member in one process with
// one runtime host process (proto/control/pool.go). The pool is started,
// recorded and adopted like an instance (its record and log are
// DIR/fnbox.json and DIR/fnbox.log); a member is an instance record in
// <data>/instances/ with Pool set and its pool's pid, plus the member file
// DIR/members/<id>.json the pool runs it from.
//
// A member is running while its pool runs and it has no exit file, ready
// once its ready file exists, and exited when its exit file appears (for
// good when its code failed to load) or its pool is gone: the reconciler
// then stops it and starts another, which starts a new pool. A pool
// without members is stopped after Config.PoolIdle.

// poolRecordFile and poolLogFile are the pool's record and log in its dir.
const (
	poolRecordFile = "fnbox.json"
	poolLogFile    = "fnbox.log"
)

func (r *Runtime) poolsDir() string               { return filepath.Join(r.dataDir, "pools") }
func (r *Runtime) poolDir(platform string) string { return filepath.Join(r.poolsDir(), platform) }
func (r *Runtime) poolRecord(platform string) string {
	return filepath.Join(r.poolDir(platform), poolRecordFile)
}
func (r *Runtime) poolLog(platform string) string {
	return filepath.Join(r.poolDir(platform), poolLogFile)
}
func (r *Runtime) membersDir(platform string) string {
	return filepath.Join(r.poolDir(platform), control.PoolMembersDir)
}
func (r *Runtime) memberPath(platform, id string) string {
	return filepath.Join(r.membersDir(platform), id+control.PoolMemberExt)
}
func (r *Runtime) memberExitPath(platform, id string) string {
	return filepath.Join(r.membersDir(platform), id+control.PoolExitExt)
}

// poolArgs is the command line of the pool of platform.
func (r *Runtime) poolArgs(platform string) []string {
	// --pool-platform starts the host at once, before any member.
	return append(slices.Clip(r.cfg.BinArgs), "--"+control.PoolFlag, r.poolDir(platform), "--pool-platform", platform)
}

// startMember starts spec's instance as a member of its platform's pool,
// starting the pool first if it does not run. dir and desc are the code
// dir and the descriptor fnbox runs.
func (r *Runtime) startMember(_ context.Context, spec runtime.InstanceSpec, dir, desc, platform string) (runtime.Instance, error) {
	id := fmt.Sprintf("%s-%d-%s", spec.Deployment, spec.Replica, randHex(4))
	args, env := r.args(dir, desc, id, spec.Functions, r.login(spec.Deployment))
	args = append(args, "--"+control.SlotFlag, strconv.Itoa(spec.Slot), "--"+control.ReadyFileFlag, r.readyPath(id))
	m := control.PoolMember{Instance: id, Args: args, Env: map[string]string{}}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m.Env[k] = v
	}
	if len(m.Env) == 0 {
		m.Env = nil
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("encode member file: %w", err)
	}

	r.poolMu.Lock()
	defer r.poolMu.Unlock()
	pool, err := r.ensurePool(platform)
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("start the %s pool for deployment %s: %w", platform, spec.Deployment, err)
	}
	// Under mu: List never sees the record without the member file.
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := record{
		ID: id, PID: pool.rec.PID, StartTicks: pool.rec.StartTicks, Started: time.Now().UTC(),
		Deployment: spec.Deployment, Version: spec.Version, Replica: spec.Replica, Slot: spec.Slot, Functions: spec.Functions,
		Brokers: r.cfg.Kafka.Brokers, Pool: platform,
	}
	// The record first: a crash between the two leaves a record without a
	// member file, which adoption drops, never a member nobody knows.
	if err := writeRecord(r.recordPath(id), rec); err != nil {
		return runtime.Instance{}, fmt.Errorf("start instance %s: %w", id, err)
	}
	// 0600: it holds the deployment's Kafka password.
	if err := writeFilePerm(r.memberPath(platform, id), b, 0o600); err != nil {
		os.Remove(r.recordPath(id))
		return runtime.Instance{}, fmt.Errorf("start instance %s: %w", id, err)
	}
	p := &proc{rec: rec, pool: pool, done: make(chan struct{})}
	r.procs[id] = p
	delete(r.idle, platform)
	r.log.Info("instance started in pool", kit.KeyDeployment, spec.Deployment, "instance", id, "pool", platform, "pid", pool.rec.PID,
		"version", spec.Version, "functions", strings.Join(spec.Functions, ","))
	return r.instance(p), nil
}

// ensurePool returns the running pool of platform, adopting or starting
// it. Called with poolMu held, not mu.
func (r *Runtime) ensurePool(platform string) (*proc, error) {
	r.mu.Lock()
	p := r.pool(platform)
	r.mu.Unlock()
	if p != nil {
		select {
		case <-p.done:
		default:
			r.mu.Lock()
			stopping := p.stopping
			r.mu.Unlock()
			if !stopping {
				return p, nil
			}
			<-p.done // bounded: stopPool kills it after Grace
		}
		r.mu.Lock()
		if r.pools[platform] == p {
			delete(r.pools, platform)
			r.forgetPool(platform, p.rec) // its cgroups above all
		}
		r.mu.Unlock()
	}
	members := r.membersDir(platform)
	if err := os.MkdirAll(members, 0o700); err != nil {
		return nil, fmt.Errorf("create pool dir: %w", err)
	}
	// Members of an earlier pool died with it (and are reported exited):
	// the new pool must not run them again. Their exit files stay until
	// they are forgotten.
	r.removeMemberFiles(platform, func(id, ext string) bool { return ext == control.PoolMemberExt })
	os.Remove(filepath.Join(r.poolDir(platform), control.PoolReadyFile))
	// Not CommandContext: a pool outlives the request that started it.
	cmd := exec.Command(r.cfg.Bin, r.poolArgs(platform)...)
	cmd.Dir = r.poolDir(platform)
	// Without the deployer's own Kafka password: the pool's host process
	// runs every shared deployment's code, and each member gets its own
	// deployment's password through its member file.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "BUTTER_SASL_PASSWORD=") })
	// Unique: it names the pool's cgroups, which are machine-wide.
	rec := record{ID: "pool-" + platform + "-" + randHex(4), Pool: platform}
	p, err := r.run(cmd, rec, limits{pids: r.cfg.PidsMax}, "", r.poolRecord(platform), r.poolLog(platform),
		func(cmd *exec.Cmd, err error, _ *proc) (error, bool) {
			if err == nil {
				return errors.New("fnbox pool exited with status 0"), false
			}
			return fmt.Errorf("fnbox pool %s: %s", err, lastLine(r.poolLog(platform))), false
		})
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.pools[platform] = p
	r.mu.Unlock()
	r.tail(p, r.poolLog(platform), 0)
	r.log.Info("pool started", "pool", platform, "pid", p.rec.PID)
	return p, nil
}

// pool returns the pool of platform this runtime runs or adopts from its
// record, nil if there is none. Called with mu held.
func (r *Runtime) pool(platform string) *proc {
	if p := r.pools[platform]; p != nil {
		return p
	}
	var rec record
	b, err := os.ReadFile(r.poolRecord(platform))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err == nil {
		err = json.Unmarshal(b, &rec)
	}
	if err != nil || rec.PID <= 0 || !sameProcess(rec.PID, rec.StartTicks) {
		r.log.Info("pool gone, forgetting it", "pool", platform, "pid", rec.PID)
		r.forgetPool(platform, rec)
		return nil
	}
	if !sameBrokers(rec.Brokers, r.cfg.Kafka.Brokers) {
		r.log.Warn("killing pool of another cluster", "pool", platform, "pid", rec.PID, "brokers", strings.Join(rec.Brokers, ","))
		killGroup(rec.PID, syscall.SIGKILL)
		r.forgetPool(platform, rec)
		return nil
	}
	p := r.watch(rec, r.poolLog(platform))
	r.pools[platform] = p
	r.log.Info("pool adopted", "pool", platform, "pid", rec.PID)
	return p
}

// forgetPool removes a pool's record, log and cgroups. Called with mu held.
func (r *Runtime) forgetPool(platform string, rec record) {
	removeCgroups(rec.Cgroups)
	os.Remove(r.poolRecord(platform))
	os.Remove(r.poolLog(platform))
	os.Remove(filepath.Join(r.poolDir(platform), control.PoolReadyFile))
}

// adoptMember takes over a recorded member of an earlier run while its
// pool is the same process, and forgets it otherwise. Called with mu held.
func (r *Runtime) adoptMember(rec record) *proc {
	pool := r.pool(rec.Pool)
	alive := pool != nil && pool.rec.PID == rec.PID && pool.rec.StartTicks == rec.StartTicks
	if alive {
		select {
		case <-pool.done:
			alive = false
		default:
		}
	}
	if !alive || !sameBrokers(rec.Brokers, r.cfg.Kafka.Brokers) ||
		(!fileExists(r.memberPath(rec.Pool, rec.ID)) && !fileExists(r.memberExitPath(rec.Pool, rec.ID))) {
		r.log.Info("pool member gone, forgetting it", "instance", rec.ID, kit.KeyDeployment, rec.Deployment, "pool", rec.Pool)
		r.forgetRecord(rec.ID, rec)
		return nil
	}
	p := &proc{rec: rec, pool: pool, done: make(chan struct{}), adopted: true}
	r.procs[rec.ID] = p
	r.log.Info("pool member adopted", kit.KeyDeployment, rec.Deployment, "instance", rec.ID, "pool", rec.Pool, "pid", rec.PID)
	return p
}

// instance reports p, an instance or a member. Called with mu held.
func (r *Runtime) instance(p *proc) runtime.Instance {
	if p.pool == nil {
		return p.instance(r.readyPath(p.rec.ID))
	}
	in := p.instance(r.readyPath(p.rec.ID)) // p.done never closes for a member
	in.OOMKills = 0
	if !p.exited {
		if b, err := os.ReadFile(r.memberExitPath(p.rec.Pool, p.rec.ID)); err == nil {
			var e control.PoolExit
			if err := json.Unmarshal(b, &e); err != nil {
				e.Error = fmt.Sprintf("unreadable exit file: %v", err)
			}
			p.exited, p.exitErr, p.permanent = true, e.Error, e.LoadError
			if p.exitErr == "" {
				p.exitErr = "the pool ended the instance"
			}
			if e.LoadError {
				// As for a lone fnbox: the version stays stopped.
				_ = writeFile(filepath.Join(r.CodeDir(p.rec.Deployment, p.rec.Version), brokenFile), []byte(e.Error))
			}
		} else {
			select {
			case <-p.pool.done:
				p.exited, p.exitErr = true, fmt.Sprintf("its pool (pid %d) exited: %v", p.pool.rec.PID, p.pool.err)
			default:
			}
		}
	}
	if p.exited {
		in.State, in.Error, in.Permanent = runtime.StateExited, p.exitErr, p.permanent
	}
	return in
}

// stopMember deletes p's member file, which tells its pool to stop it
// (drain, commit, leave its groups), waits up to Grace for its exit file,
// and forgets it.
func (r *Runtime) stopMember(ctx context.Context, p *proc) error {
	id, platform := p.rec.ID, p.rec.Pool
	if err := os.Remove(r.memberPath(platform, id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("stop instance %s: %w", id, err)
	}
	r.mu.Lock()
	in := r.instance(p)
	r.mu.Unlock()
	if in.State == runtime.StateRunning {
		wait, cancel := context.WithTimeout(ctx, r.cfg.Grace)
		err := kit.Poll(wait, 50*time.Millisecond, func() bool {
			r.mu.Lock()
			defer r.mu.Unlock()
			return r.instance(p).State != runtime.StateRunning
		})
		cancel()
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("stop instance %s: %w", id, ctx.Err())
		case err != nil:
			// Its member file is gone, so the pool goes on stopping it;
			// killing the pool would take every other member with it.
			r.log.Warn("pool member not stopped within the grace period, left to its pool", "instance", id, kit.KeyDeployment, p.rec.Deployment, "pool", platform)
		default:
			r.log.Info("instance stopped", kit.KeyDeployment, p.rec.Deployment, "instance", id, "pool", platform)
		}
	}
	r.mu.Lock()
	delete(r.procs, id)
	r.forgetRecord(id, p.rec)
	r.mu.Unlock()
	return nil
}

// removeMemberFiles removes the files in platform's members dir that
// remove selects by instance id and extension.
func (r *Runtime) removeMemberFiles(platform string, remove func(id, ext string) bool) {
	entries, _ := os.ReadDir(r.membersDir(platform))
	for _, e := range entries {
		name := e.Name()
		ext := filepath.Ext(name)
		if remove(strings.TrimSuffix(name, ext), ext) {
			os.Remove(filepath.Join(r.membersDir(platform), name))
		}
	}
}

// adoptPools adopts the pools recorded in the data dir. Called with mu
// held, by List.
func (r *Runtime) adoptPools() {
	entries, _ := os.ReadDir(r.poolsDir())
	for _, e := range entries {
		if e.IsDir() {
			r.pool(e.Name())
		}
	}
}

// checkPools stops the pools without members for PoolIdle, and forgets
// those gone. Called with mu held, by List.
func (r *Runtime) checkPools() {
	entries, _ := os.ReadDir(r.poolsDir())
	members := map[string]int{}
	for _, p := range r.procs {
		if p.pool != nil && !p.exited {
			members[p.rec.Pool]++
		}
	}
	for _, e := range entries {
		platform := e.Name()
		if !e.IsDir() {
			continue
		}
		p := r.pool(platform)
		if p == nil || p.stopping || members[platform] > 0 {
			delete(r.idle, platform)
			continue
		}
		select {
		case <-p.done:
			delete(r.pools, platform)
			delete(r.idle, platform)
			r.forgetPool(platform, p.rec)
			continue
		default:
		}
		since, ok := r.idle[platform]
		if !ok {
			r.idle[platform] = time.Now()
			continue
		}
		if r.cfg.PoolIdle < 0 || time.Since(since) < r.cfg.PoolIdle {
			continue
		}
		// A Start holds poolMu from finding the pool running until its
		// member file is written: not while one is under way.
		if !r.poolMu.TryLock() {
			continue
		}
		delete(r.idle, platform)
		p.stopping = true
		r.poolMu.Unlock()
		r.log.Info("stopping pool without members", "pool", platform, "pid", p.rec.PID, "idle", r.cfg.PoolIdle.String())
		go r.stopPool(platform, p)
	}
}

// StopIdlePools stops every pool that has no running member now, without
// waiting for PoolIdle: for a deployer that stopped its instances on its
// way out. A pool still serving members is left alone.
func (r *Runtime) StopIdlePools(ctx context.Context) error {
	r.poolMu.Lock() // no pool starts meanwhile
	defer r.poolMu.Unlock()
	r.mu.Lock()
	r.adoptPools()
	members := map[string]bool{}
	for _, p := range r.procs {
		if p.pool != nil && !p.exited {
			members[p.rec.Pool] = true
		}
	}
	var stop []*proc
	for platform, p := range r.pools {
		if !members[platform] && !p.stopping {
			p.stopping = true
			stop = append(stop, p)
			go r.stopPool(platform, p)
		}
	}
	r.mu.Unlock()
	for _, p := range stop {
		select {
		case <-p.done:
		case <-ctx.Done():
			return fmt.Errorf("stop pools: %w", ctx.Err())
		}
	}
	return nil
}

// stopPool stops pool p of platform (SIGTERM, SIGKILL after Grace) and
// forgets it, unless a new pool took its place meanwhile.
func (r *Runtime) stopPool(platform string, p *proc) {
	// No deadline but the grace: the pool is killed then, and gone.
	_ = r.terminate(context.Background(), p, "pool ignored SIGTERM, killing it", "pool", platform, "pid", p.rec.PID)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pools[platform] == p {
		delete(r.pools, platform)
		r.forgetPool(platform, p.rec)
	}
}

// isOrphanPool reports whether args, the command line of a process no
// record names, is a pool of this data dir.
func (r *Runtime) isOrphanPool(args []string) bool {
	prefix := r.poolsDir() + string(filepath.Separator)
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "--"+control.PoolFlag && strings.HasPrefix(args[i+1], prefix) {
			return true
		}
	}
	return false
}

// sweepMembers removes member and exit files that no instance record
// names: left by a crash, a pool must not run them. Called with mu held.
func (r *Runtime) sweepMembers() {
	entries, _ := os.ReadDir(r.poolsDir())
	for _, e := range entries {
		if e.IsDir() {
			r.removeMemberFiles(e.Name(), func(id, ext string) bool {
				return (ext == control.PoolMemberExt || ext == control.PoolExitExt) && !fileExists(r.recordPath(id))
			})
		}
	}
}
