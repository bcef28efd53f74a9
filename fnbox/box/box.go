// Package box runs an fnbox in-process: the delivery engine of one
// deployment's stream functions plus the runtime that executes their code.
// The fnbox command is a thin main around it; `butter up` and tests use it
// directly.
package box

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/buttercompass/butter/fnbox/internal/engine"
	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/obs"
)

// Platform starts the runtime of a deployment on one platform (node,
// python, exec...). The runtime's processes live until its Close.
type Platform func(ctx context.Context, spec runtime.Spec) (runtime.Runtime, error)

// Platforms maps descriptor platform names to the Platform that runs them.
// The fnbox command registers the platforms it is built with; an embedder
// registers its own before Run. It is read without locking: fill it before
// starting any Box.
var Platforms = map[string]Platform{}

// NewPool starts a pool for platform: one set of processes running the
// functions of many `isolation: shared` deployments (runtime.Pool).
type NewPool func(platform string, logger *slog.Logger) (runtime.Pool, error)

// Pools maps the platforms that can share processes (node, python) to
// what starts their pool. Like Platforms it is filled before any Box
// starts and read without locking.
var Pools = map[string]NewPool{}

// ErrUnknownPlatform means no Platform is registered for the descriptor's
// platform: this fnbox was built without it.
var ErrUnknownPlatform = errors.New("platform is not available in this fnbox")

// Config configures a Box.
type Config struct {
	// Kafka says how to reach the cluster.
	Kafka kit.KafkaConfig
	// Deployment is the parsed descriptor, defaults applied.
	Deployment *descriptor.Descriptor
	// Dir is the deployment's code directory (runtime.Spec.Dir).
	Dir string
	// Functions names the functions to run; empty means every function
	// with stream bindings.
	Functions []string
	// Instance identifies this fnbox; default DefaultInstance().
	Instance string
	// Admin is the host:port of the admin server serving this box's
	// Metrics, reported in heartbeats; empty when there is none.
	Admin string
	// Slot, TxnTimeout and RebalanceTimeout are engine.Config's: the
	// fencing slot of exactly-once functions and the delivery timeouts.
	Slot                         string
	TxnTimeout, RebalanceTimeout time.Duration
	// Env is added to the function processes' environment.
	Env map[string]string
	// Logger is for fnbox's own logs; default slog.Default().
	Logger *slog.Logger
	// Metrics receives the Prometheus metrics; nil registers none.
	Metrics prometheus.Registerer
	// Runtime, if set, runs the functions instead of the one
	// Platforms[Deployment.Platform] would start (e.g. runtime.Funcs);
	// the Box closes it when done.
	Runtime runtime.Runtime
	// Pool, if set (and Runtime is not), runs the functions in shared
	// processes: Run loads them with Pool.Add instead of starting the
	// platform's own, and unloads them when done. The pool must run
	// Deployment.Platform; it stays the caller's.
	Pool runtime.Pool
	// TracerProvider makes the box's spans; nil means the global one. A
	// pool gives each member its own, exporting with its own principal.
	TracerProvider trace.TracerProvider
	// HeartbeatInterval is how often heartbeats go out; default
	// obs.HeartbeatInterval.
	HeartbeatInterval time.Duration
	// CloseTimeout bounds closing the runtime at shutdown; default 10s.
	CloseTimeout time.Duration
}

// DefaultInstance is the instance id of an fnbox not given one:
// hostname-pid.
func DefaultInstance() string { return kit.ProcessName("fnbox") }

// Box is one fnbox: create it with New, then Run it once.
type Box struct {
	cfg     Config
	eng     *engine.Engine
	started atomic.Bool
}

// New checks cfg and connects to Kafka lazily; nothing is consumed before
// Run.
func New(cfg Config) (*Box, error) {
	if cfg.Deployment == nil {
		return nil, errors.New("create fnbox: Config.Deployment is nil")
	}
	if cfg.Instance == "" {
		cfg.Instance = DefaultInstance()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.CloseTimeout <= 0 {
		cfg.CloseTimeout = 10 * time.Second
	}
	if cfg.Runtime == nil && cfg.Pool == nil {
		if _, ok := Platforms[cfg.Deployment.Platform]; !ok {
			return nil, fmt.Errorf("create fnbox for deployment %s: platform %q (available: %v): %w",
				cfg.Deployment.Name, cfg.Deployment.Platform, slices.Sorted(maps.Keys(Platforms)), ErrUnknownPlatform)
		}
	}
	eng, err := engine.New(engine.Config{
		Kafka:             cfg.Kafka,
		Deployment:        cfg.Deployment,
		Functions:         cfg.Functions,
		Instance:          cfg.Instance,
		Admin:             cfg.Admin,
		Slot:              cfg.Slot,
		TxnTimeout:        cfg.TxnTimeout,
		RebalanceTimeout:  cfg.RebalanceTimeout,
		Logger:            cfg.Logger,
		Metrics:           cfg.Metrics,
		TracerProvider:    cfg.TracerProvider,
		HeartbeatInterval: cfg.HeartbeatInterval,
	})
	if err != nil {
		return nil, err
	}
	return &Box{cfg: cfg, eng: eng}, nil
}

// Run starts the runtime (or loads the functions into Config.Pool) and
// delivers events until ctx is done; then it drains (stops fetching,
// finishes in-flight invocations, commits, flushes, leaves the groups) and
// closes the runtime.
func (b *Box) Run(ctx context.Context) error {
	rt := b.cfg.Runtime
	if rt == nil {
		spec := runtime.Spec{
			Deployment: b.cfg.Deployment,
			Functions:  b.cfg.Functions,
			Dir:        b.cfg.Dir,
			Env:        b.cfg.Env,
			Stdout:     b.eng.LogWriter(obs.OriginStdout, obs.LevelInfo),
			Stderr:     b.eng.LogWriter(obs.OriginStderr, obs.LevelWarn),
			Logger:     b.cfg.Logger,
		}
		var err error
		if b.cfg.Pool != nil {
			rt, err = b.cfg.Pool.Add(ctx, spec)
		} else {
			rt, err = Platforms[b.cfg.Deployment.Platform](ctx, spec)
		}
		if err != nil {
			b.eng.Close()
			return fmt.Errorf("start %s runtime of deployment %s: %w", b.cfg.Deployment.Platform, b.cfg.Deployment.Name, err)
		}
	}
	b.started.Store(true)
	err := b.eng.Run(ctx, rt)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.cfg.CloseTimeout)
	defer cancel()
	if cerr := rt.Close(cctx); cerr != nil {
		err = errors.Join(err, fmt.Errorf("close runtime: %w", cerr))
	}
	return err
}

// Ready reports whether the runtime is up and every function has joined its
// consumer group: the /readyz check.
func (b *Box) Ready(ctx context.Context) error {
	if !b.started.Load() {
		return errors.New("the runtime is starting")
	}
	return b.eng.Ready(ctx)
}

// StreamFunctions returns the names of the functions of d that consume
// streams: those a Box runs when Config.Functions is empty.
func StreamFunctions(d *descriptor.Descriptor) []string { return engine.StreamFunctions(d) }
