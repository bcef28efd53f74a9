// Package process is the runtime that runs each fnbox instance as a child
// process on this machine: the single-machine default of `butter up`.
//
// Every instance runs in its own process group with its output appended
// to <data>/instances/<id>.log, which the runtime tails into the
// deployer's log; a file, not a pipe, so an instance outlives a deployer
// crash without dying of SIGPIPE. <data>/instances/<id>.json records its
// pid and start time, so a restarted deployer adopts exactly the processes
// it started: same pid and same start time, never a stranger who got the
// pid later.
package process

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/buttercompass/butter/deployer/gobuild"
	"github.com/buttercompass/butter/deployer/internal/archive"
	"github.com/buttercompass/butter/deployer/internal/runtime"
	"github.com/buttercompass/butter/deployer/internal/secrets"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/kit"
)

// Config configures the process runtime.
type Config struct {
	// DataDir holds deployments/<name>/<version>/ (unpacked code) and
	// instances/<id>.{json,log}.
	DataDir string
	// Bin is the fnbox executable.
	Bin string
	// BinArgs come before fnbox's own flags: ["fnbox"] when Bin is the
	// butter binary, which holds fnbox as a subcommand.
	BinArgs []string
	// Kafka is passed on to every instance as flags (the SASL password
	// through BUTTER_SASL_PASSWORD: flags show in ps).
	Kafka kit.KafkaConfig
	// Login, if set, returns the Kafka login of a deployment's instances
	// (its own principal) instead of Kafka.
	Login func(deployment string) kit.KafkaConfig
	// Grace is how long Stop waits after SIGTERM before SIGKILL. Default 10s.
	Grace time.Duration
	// Logger receives the runtime's logs and every instance output line.
	Logger *slog.Logger
	// Go builds go-platform deployments. Default: go on PATH, with the
	// embedded SDK and a build cache under <data>/go.
	Go gobuild.Config
	// Secrets decrypts the secretEnv values of descriptors into the
	// environment of their instances; nil refuses to start a deployment
	// that has secrets.
	Secrets *secrets.Key
	// DieWithParent ties every instance to this process: the kernel kills
	// it (SIGKILL) when the deployer dies, even by kill -9. For `butter
	// up`, whose platform dies as one; a standalone deployer leaves it
	// off, so its instances outlive a crash and are adopted.
	DieWithParent bool
	// MemoryOverhead is added to the sum of an instance's functions'
	// limits.memory for fnbox itself. Default 128Mi.
	MemoryOverhead int64
	// PidsMax caps the processes and threads of one instance, where a
	// cgroup can. Default 1024; negative for no cap.
	PidsMax int64
	// PruneAfter is how old an unwanted code dir must be before Prune
	// removes it: a version the API has just prepared is not stored yet.
	// Default 10 minutes; negative for no wait.
	PruneAfter time.Duration
}

// Runtime runs instances as processes.
type Runtime struct {
	cfg     Config
	dataDir string // absolute
	log     *slog.Logger
	builder *gobuild.Builder
	// prepareMu makes one code dir at a time: builds are CPU-bound, and
	// the API and the reconciler may prepare the same version at once.
	prepareMu sync.Mutex
	tailStop  chan struct{}
	tails     sync.WaitGroup

	mu    sync.Mutex
	procs map[string]*proc
	swept bool
	// cgroups enforces limits (limits.go).
	cgroups *cgroups
}

var _ runtime.Runtime = (*Runtime)(nil)

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
}

// New returns a runtime; Close stops its log tailing (not its instances).
func New(cfg Config) (*Runtime, error) {
	if cfg.Grace <= 0 {
		cfg.Grace = 10 * time.Second
	}
	switch {
	case cfg.PruneAfter == 0:
		cfg.PruneAfter = 10 * time.Minute
	case cfg.PruneAfter < 0:
		cfg.PruneAfter = 0
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MemoryOverhead <= 0 {
		cfg.MemoryOverhead = 128 << 20
	}
	switch {
	case cfg.PidsMax == 0:
		cfg.PidsMax = 1024
	case cfg.PidsMax < 0:
		cfg.PidsMax = 0
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("resolve data dir: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "instances"), 0o755); err != nil {
		return nil, fmt.Errorf("create instances dir: %w", err)
	}
	if cfg.Go.Dir == "" {
		cfg.Go.Dir = filepath.Join(dir, "go")
	}
	cg := detectCgroups()
	if cg.kind == CgroupNone {
		cfg.Logger.Warn("no writable cgroup: instances whose functions set limits will be refused", "tried", cg.why)
	} else {
		cfg.Logger.Info("instance limits enforced with "+cg.kind, "kind", cg.kind)
	}
	return &Runtime{cfg: cfg, dataDir: dir, log: cfg.Logger, builder: gobuild.New(cfg.Go),
		tailStop: make(chan struct{}), procs: map[string]*proc{}, cgroups: cg}, nil
}

// Close stops tailing instance logs. Instances keep running, to be adopted
// by the next deployer or stopped with Stop before.
func (r *Runtime) Close() {
	close(r.tailStop)
	r.tails.Wait()
}

func (r *Runtime) instancesDir() string        { return filepath.Join(r.dataDir, "instances") }
func (r *Runtime) recordPath(id string) string { return filepath.Join(r.instancesDir(), id+".json") }
func (r *Runtime) logPath(id string) string    { return filepath.Join(r.instancesDir(), id+".log") }
func (r *Runtime) readyPath(id string) string  { return filepath.Join(r.instancesDir(), id+".ready") }

// Enforcement says how limits are enforced: CgroupV2, CgroupV1 or
// CgroupNone.
func (r *Runtime) Enforcement() string { return r.cgroups.kind }

// Prune removes the code dirs of versions keep rejects that no listed
// instance runs and that were not prepared within PruneAfter, the
// directories of deployments left empty, and leftovers of preparations a
// crash interrupted.
func (r *Runtime) Prune(ctx context.Context, keep func(deployment, version string) bool) error {
	insts, err := r.List(ctx)
	if err != nil {
		return err
	}
	inUse := map[string]bool{}
	for _, in := range insts {
		inUse[filepath.Join(in.Deployment, in.Version)] = true
	}
	r.prepareMu.Lock() // no code dir is being made meanwhile
	defer r.prepareMu.Unlock()
	root := filepath.Join(r.dataDir, "deployments")
	deps, err := os.ReadDir(root)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	var errs []error
	for _, dep := range deps {
		if !dep.IsDir() {
			continue
		}
		versions, err := os.ReadDir(filepath.Join(root, dep.Name()))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		left := len(versions)
		for _, v := range versions {
			info, err := v.Info()
			if err != nil || time.Since(info.ModTime()) < r.cfg.PruneAfter {
				continue
			}
			name := v.Name()
			leftover := strings.HasPrefix(name, ".prepare-") || strings.HasPrefix(name, ".unpack-")
			if !leftover && (inUse[filepath.Join(dep.Name(), name)] || keep(dep.Name(), name)) {
				continue
			}
			if err := os.RemoveAll(filepath.Join(root, dep.Name(), name)); err != nil {
				errs = append(errs, err)
				continue
			}
			left--
			r.log.Info("removed unused code", kit.KeyDeployment, dep.Name(), "version", name)
		}
		if left == 0 {
			_ = os.Remove(filepath.Join(root, dep.Name())) // only if empty
		}
	}
	return errors.Join(errs...)
}

// CodeDir is where a deployment version's code is unpacked.
func (r *Runtime) CodeDir(deployment, version string) string {
	return filepath.Join(r.dataDir, "deployments", deployment, version)
}

// Start unpacks the code (once per version) and starts fnbox on it.
func (r *Runtime) Start(ctx context.Context, spec runtime.InstanceSpec) (runtime.Instance, error) {
	dir, desc, err := r.prepare(ctx, spec)
	if err != nil {
		return runtime.Instance{}, err
	}
	secretEnv, err := r.secretEnv(spec)
	if err != nil {
		return runtime.Instance{}, err
	}
	id := fmt.Sprintf("%s-%d-%s", spec.Deployment, spec.Replica, randHex(4))
	logf, err := os.OpenFile(r.logPath(id), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("open instance log: %w", err)
	}
	defer logf.Close()
	args, env := r.args(dir, desc, id, spec.Functions, r.login(spec.Deployment))
	args = append(args, "--"+control.SlotFlag, strconv.Itoa(spec.Slot))
	// Not CommandContext: an instance outlives the request that started it.
	cmd := exec.Command(r.cfg.Bin, append(slices.Clip(r.cfg.BinArgs), args...)...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), env...), secretEnv...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cgroups, err := r.launch(cmd, id, dir, spec)
	if err != nil {
		os.Remove(r.logPath(id))
		return runtime.Instance{}, fmt.Errorf("start %s for deployment %s: %w", r.cfg.Bin, spec.Deployment, err)
	}
	p := &proc{done: make(chan struct{}), rec: record{
		ID: id, PID: cmd.Process.Pid, Started: time.Now().UTC(),
		Deployment: spec.Deployment, Version: spec.Version, Replica: spec.Replica, Slot: spec.Slot, Functions: spec.Functions,
		Brokers: r.cfg.Kafka.Brokers, Cgroups: cgroups,
	}}
	go func() {
		err := cmd.Wait()
		p.err, p.permanent = r.exitError(cmd, err, p, dir)
		close(p.done)
	}()
	ticks, alive, err := procStart(p.rec.PID)
	if err == nil && alive {
		p.rec.StartTicks = ticks
		err = writeRecord(r.recordPath(id), p.rec)
	} else if err == nil {
		err = <-waitErr(p)
	}
	if err != nil {
		killGroup(p.rec.PID, syscall.SIGKILL)
		<-p.done
		os.Remove(r.recordPath(id))
		return runtime.Instance{}, fmt.Errorf("start instance %s: %w", id, err)
	}
	r.mu.Lock()
	r.procs[id] = p
	r.mu.Unlock()
	r.tail(p, 0)
	r.log.Info("instance started", kit.KeyDeployment, spec.Deployment, "instance", id, "pid", p.rec.PID,
		"version", spec.Version, "functions", strings.Join(spec.Functions, ","))
	return p.instance(r.readyPath(p.rec.ID)), nil
}

func waitErr(p *proc) <-chan error {
	c := make(chan error, 1)
	go func() { <-p.done; c <- p.err }()
	return c
}

// Prepare unpacks a deployment version's code where its instances will
// run, and builds it when its platform is go, without starting anything.
// The deployer calls it before storing a go deployment, so a build error
// (a *gobuild.Error) rejects the deployment; Start then finds the code
// ready.
func (r *Runtime) Prepare(ctx context.Context, d control.Deployment) error {
	_, _, err := r.prepare(ctx, runtime.InstanceSpec{Deployment: d.Name, Version: d.Version, Descriptor: d.Descriptor, Code: d.Code})
	return err
}

// prepare makes <data>/deployments/<name>/<version>/ with the code and
// butter.yaml, and for a go deployment the built functions, and returns
// it with the descriptor fnbox runs. A version's content never changes,
// so an existing directory is reused. The directory is made under a
// temporary name and renamed into place once whole, so a crash or a
// failed build never leaves half of one behind.
func (r *Runtime) prepare(ctx context.Context, spec runtime.InstanceSpec) (dir, desc string, err error) {
	// Both name a directory under the data dir: never a path out of it.
	if !descriptor.ValidVersion(spec.Version) || !filepath.IsLocal(spec.Deployment) || strings.ContainsRune(spec.Deployment, filepath.Separator) {
		return "", "", fmt.Errorf("deployment %q version %q cannot name a code directory", spec.Deployment, spec.Version)
	}
	dir = r.CodeDir(spec.Deployment, spec.Version)
	ready := func() bool { return fileExists(filepath.Join(dir, control.DescriptorFile)) }
	if ready() { // without the lock: a build elsewhere must not hold up this start
		return dir, runDescriptor(dir), nil
	}
	r.prepareMu.Lock()
	defer r.prepareMu.Unlock()
	if ready() {
		return dir, runDescriptor(dir), nil
	}
	os.RemoveAll(dir)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", "", fmt.Errorf("create code dir: %w", err)
	}
	tmp := filepath.Join(filepath.Dir(dir), ".prepare-"+spec.Version+"-"+randHex(4))
	defer os.RemoveAll(tmp)
	if len(spec.Code) > 0 {
		if err := archive.Extract(spec.Code, tmp); err != nil {
			return "", "", err
		}
	} else if err := os.MkdirAll(tmp, 0o755); err != nil {
		return "", "", fmt.Errorf("create code dir: %w", err)
	}
	// The stored descriptor is the one the deployer validated; write it
	// even over the archive's copy, which it was read from anyway.
	if err := writeFile(filepath.Join(tmp, control.DescriptorFile), []byte(spec.Descriptor)); err != nil {
		return "", "", err
	}
	parsed, err := descriptor.Parse(control.DescriptorFile, []byte(spec.Descriptor))
	if err != nil {
		return "", "", fmt.Errorf("parse descriptor of %s version %s: %w", spec.Deployment, spec.Version, err)
	}
	if parsed.Platform == descriptor.PlatformGo {
		if len(spec.Code) == 0 {
			return "", "", gobuild.ErrNoCode(control.DescriptorFile, []byte(spec.Descriptor))
		}
		if err := r.builder.Build(ctx, tmp, control.DescriptorFile, []byte(spec.Descriptor), parsed); err != nil {
			return "", "", err
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", "", fmt.Errorf("move code into %s: %w", dir, err)
	}
	return dir, runDescriptor(dir), nil
}

// runDescriptor is the descriptor fnbox runs in a prepared code dir: the
// build's rewrite for go, else butter.yaml.
func runDescriptor(dir string) string {
	if p := filepath.Join(dir, filepath.FromSlash(gobuild.RunDescriptor)); fileExists(p) {
		return p
	}
	return filepath.Join(dir, control.DescriptorFile)
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// login returns the Kafka settings of deployment's instances.
func (r *Runtime) login(deployment string) kit.KafkaConfig {
	if r.cfg.Login != nil {
		return r.cfg.Login(deployment)
	}
	return r.cfg.Kafka
}

// args builds fnbox's command line (see fnbox --help) and extra env.
func (r *Runtime) args(dir, desc, id string, functions []string, k kit.KafkaConfig) (args, env []string) {
	args = []string{
		"--code", dir,
		"--descriptor", desc,
		"--functions", strings.Join(functions, ","),
		"--instance", id,
		"--admin", "127.0.0.1:0",
	}
	kargs, env := k.Args()
	args = append(args, kargs...)
	return args, env
}

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
		out = append(out, p.instance(r.readyPath(p.rec.ID)))
	}
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
	p := &proc{rec: rec, done: make(chan struct{}), adopted: true}
	go func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for range t.C {
			if !sameProcess(rec.PID, rec.StartTicks) {
				p.err = errors.New("fnbox exited (adopted process, exit status unknown)")
				close(p.done)
				return
			}
		}
	}()
	r.procs[id] = p
	var from int64
	if st, err := os.Stat(r.logPath(id)); err == nil {
		from = st.Size()
	}
	r.tail(p, from)
	r.log.Info("instance adopted", kit.KeyDeployment, rec.Deployment, "instance", id, "pid", rec.PID)
	return p
}

// sweep kills unrecorded fnbox processes whose --code lies in this data
// directory. Called with r.mu held.
func (r *Runtime) sweep() {
	prefix := filepath.Join(r.dataDir, "deployments") + string(filepath.Separator)
	known := map[int]bool{}
	for _, p := range r.procs {
		known[p.rec.PID] = true
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || known[pid] || pid == os.Getpid() {
			continue
		}
		args := cmdline(pid)
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

// Stop sends SIGTERM to the instance's process group, SIGKILL after the
// grace period, and forgets the instance.
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
	os.Remove(r.readyPath(id))
	os.Remove(r.recordPath(id))
	os.Remove(r.logPath(id))
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

// tail copies the instance's log file, from offset from, into the
// deployer's log line by line until the instance is gone and the file
// drained, or Close.
func (r *Runtime) tail(p *proc, from int64) {
	f, err := os.Open(r.logPath(p.rec.ID))
	if err != nil {
		return
	}
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		f.Close()
		return
	}
	log := r.log.With(kit.KeyDeployment, p.rec.Deployment, "instance", p.rec.ID)
	r.tails.Add(1)
	go func() {
		defer r.tails.Done()
		defer f.Close()
		br := bufio.NewReader(f)
		var partial string
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			line, err := br.ReadString('\n')
			partial += line
			if err == nil {
				log.Info(strings.TrimRight(partial, "\r\n"), "source", "fnbox")
				partial = ""
				continue
			}
			select {
			case <-p.done:
				// Drain what the process wrote before it went.
				if rest, _ := io.ReadAll(br); len(rest) > 0 || partial != "" {
					for _, l := range strings.Split(strings.TrimRight(partial+string(rest), "\n"), "\n") {
						log.Info(l, "source", "fnbox")
					}
				}
				return
			case <-r.tailStop:
				return
			case <-tick.C:
			}
		}
	}()
}

func writeRecord(path string, rec record) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("encode instance record: %w", err)
	}
	return writeFile(path, b)
}

// writeFile writes atomically: a crash leaves the old file or the new one.
func writeFile(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
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

// lastLine returns the last line an instance printed (fnbox's own error),
// reading only the log's tail.
func lastLine(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "fnbox could not load the function code"
	}
	defer f.Close()
	buf := make([]byte, 4096)
	st, _ := f.Stat()
	off := max(0, st.Size()-int64(len(buf)))
	n, _ := f.ReadAt(buf, off)
	lines := strings.Split(strings.TrimSpace(string(buf[:n])), "\n")
	return strings.TrimPrefix(lines[len(lines)-1], "fnbox: ")
}
