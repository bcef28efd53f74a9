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
//
// Files by concern:
//
//   - process.go: Config, New, Close and where instance files live.
//   - code.go: a version's code dir (unpack, Go build) and pruning old ones.
//   - start.go: Start, fnbox's command line and login.
//   - launch.go: the fork itself (cgroup, parent-death tie), exit causes, Admit.
//   - limits.go: memory, CPU and pids limits through cgroups v2 or v1.
//   - adopt.go: List, and adopting the instances of a restarted deployer
//     (killing those of another cluster and unrecorded orphans).
//   - stop.go: Stop (SIGTERM, grace, SIGKILL) and forgetting an instance.
//   - pool.go: isolation: shared deployments, run as members of one
//     `fnbox --pool` per platform.
//   - logs.go: tailing instance output into the deployer's log.
//   - record.go: the instance record <data>/instances/<id>.json.
//   - proc.go: /proc reading (start times, command lines) and group kills.
//   - secrets.go, starter.go: secret env values; the thread that forks.
//
// Restarting a crashed instance is the reconciler's job
// (deployer/internal/reconcile), not the runtime's.
package process

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/buttercompass/butter/deployer/gobuild"
	"github.com/buttercompass/butter/deployer/internal/runtime"
	"github.com/buttercompass/butter/deployer/internal/secrets"
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
	// embedded SDK, one build cache for every deployment under <data>/go,
	// and progress in Logger (code.go).
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
	// PoolIdle is how long the pool of a platform (isolation: shared,
	// pool.go) runs without members before it is stopped, so that a
	// rolling update does not restart it. Default 1 minute; negative
	// keeps it running.
	PoolIdle time.Duration
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

	// poolMu makes one pool at a time (pool.go); taken before mu.
	poolMu sync.Mutex

	mu    sync.Mutex
	procs map[string]*proc // instances and pool members, by id
	pools map[string]*proc // pool processes, by platform
	idle  map[string]time.Time
	swept bool
	// cgroups enforces limits (limits.go).
	cgroups *cgroups
}

var _ runtime.Runtime = (*Runtime)(nil)

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
	if cfg.PoolIdle == 0 {
		cfg.PoolIdle = time.Minute
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
	if cfg.Go.Progress == nil {
		cfg.Go.Progress = buildLog(cfg.Logger, buildLogEvery)
	}
	cg := detectCgroups()
	if cg.kind == CgroupNone {
		cfg.Logger.Warn("no writable cgroup: instances whose functions set limits will be refused", "tried", cg.why)
	} else {
		cfg.Logger.Info("instance limits enforced with "+cg.kind, "kind", cg.kind)
	}
	return &Runtime{cfg: cfg, dataDir: dir, log: cfg.Logger, builder: gobuild.New(cfg.Go),
		tailStop: make(chan struct{}), procs: map[string]*proc{}, pools: map[string]*proc{}, idle: map[string]time.Time{}, cgroups: cg}, nil
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
