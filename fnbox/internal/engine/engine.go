// Package engine is fnbox's delivery engine (DESIGN §6): one consumer group
// per function over its bound streams, each event handed to the runtime,
// results, emits, replies and dead letters written, and offsets committed
// only for what is done.
//
// At-least-once (the default) commits a partition's offset only after the
// function succeeded and every record it caused was acknowledged; a crash
// anywhere redelivers. Exactly-once wraps a poll's outputs and its offset
// commit in one Kafka transaction (kgo.GroupTransactSession).
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/obs"
	"github.com/buttercompass/butter/proto/topics"
)

// DefaultClientID is the Kafka client id prefix of an engine whose
// KafkaConfig names none.
const DefaultClientID = "butter-fnbox"

// ClientID returns the Kafka client id of instance: prefix (default
// DefaultClientID) and the instance id, so broker logs, metrics and quotas
// tell the instances of a function apart.
func ClientID(prefix, instance string) string {
	if prefix == "" || prefix == kit.DefaultClientID {
		prefix = DefaultClientID
	}
	if instance == "" || strings.HasSuffix(prefix, "-"+instance) {
		return prefix
	}
	return prefix + "-" + instance
}

// Config configures an Engine.
type Config struct {
	// Kafka says how to reach the cluster and under which topic prefix.
	Kafka kit.KafkaConfig
	// Deployment is the parsed descriptor, defaults applied.
	Deployment *descriptor.Descriptor
	// Functions names the functions to run; empty means every function
	// with stream bindings (see StreamFunctions).
	Functions []string
	// Instance identifies this fnbox among the function's instances, in
	// heartbeats and logs, and in the transactional id of exactly-once
	// functions when Slot is empty.
	Instance string
	// Admin is the host:port of the instance's admin server (its
	// /metrics), reported in heartbeats; empty when it serves none.
	Admin string
	// Slot is the instance's fencing slot (control.SlotFlag), given by the
	// deployer: exactly-once functions use the transactional id
	// control.TransactionalID(group, slot), so a restart in the same slot
	// fences the dead instance. Empty means none.
	Slot string
	// TxnTimeout is the exactly-once transaction timeout; default
	// DefaultTxnTimeout.
	TxnTimeout time.Duration
	// RebalanceTimeout is how long a rebalance may wait for this instance
	// besides one invocation in flight; default DefaultRebalanceTimeout.
	// At-least-once polls start invocations for half of it.
	RebalanceTimeout time.Duration
	// CrashLimit is how many times an event may crash fnbox or its runtime
	// host before it is dead-lettered as obs.ErrCrashed; default
	// DefaultCrashLimit.
	CrashLimit int
	// Logger is for fnbox's own logs; default slog.Default().
	Logger *slog.Logger
	// Metrics receives the engine's Prometheus metrics; nil registers none.
	Metrics prometheus.Registerer
	// TracerProvider makes the engine's spans; nil means the global
	// provider. A pool of instances gives each its own, exporting with
	// the instance's own principal.
	TracerProvider trace.TracerProvider
	// HeartbeatInterval is how often heartbeats are sent; default
	// obs.HeartbeatInterval.
	HeartbeatInterval time.Duration
	// DrainTimeout bounds how long in-flight invocations may finish after
	// the context is done; default the longest delivery timeout.
	DrainTimeout time.Duration
	// MaxPollRecords bounds one poll, the unit of work between commits
	// (and of a transaction under exactly-once); default 500. A function
	// whose delivery.batch is larger polls up to its batch size instead.
	MaxPollRecords int
	// Logs bound what the instance writes to _butter.logs; zero fields
	// take the BUTTER_FNBOX_LOG_* environment, else DefaultLogLimits.
	Logs LogLimits

	// crash, when closed, makes Run return at once without committing or
	// ending transactions, as a killed process would: for tests.
	crash <-chan struct{}
	// slot is Slot parsed, -1 for none.
	slot int
}

// Defaults of Config, and why (docs/delivery.md).
const (
	// DefaultTxnTimeout: a transaction is open only while a done poll's
	// outputs are written, well under a second; the timeout is what
	// read_committed readers wait behind the open transaction of an
	// instance that died and was not restarted in its slot (a restart
	// aborts it at once). 10 s is the longest such stall we accept, with
	// room for a slow broker.
	DefaultTxnTimeout = 10 * time.Second
	// DefaultRebalanceTimeout: a joining or restarted instance waits for
	// the others to finish their poll; 30 s (15 s of starting work plus
	// one invocation) keeps that short without cutting polls of ordinary
	// functions.
	DefaultRebalanceTimeout = 30 * time.Second
	// DefaultCrashLimit: one crash may be bad luck (an OOM kill, a
	// node restart), a third one on the same event is not.
	DefaultCrashLimit = 3
)

// Errors of New.
var (
	// ErrNoFunctions means nothing would be consumed: name functions that
	// have streams in their bindings.
	ErrNoFunctions = errors.New("no function with stream bindings to run")
	// ErrNotStreamFunction means a function named in Functions is unknown
	// or has no stream bindings.
	ErrNotStreamFunction = errors.New("function is not in the deployment or has no stream bindings")
)

// StreamFunctions returns the names of the functions of d that consume
// streams (bound ones, or the request and tick streams of routes and
// timers): the ones an fnbox runs by default.
func StreamFunctions(d *descriptor.Descriptor) []string {
	var names []string
	for _, f := range d.Functions {
		if len(f.Inputs()) > 0 {
			names = append(names, f.Name)
		}
	}
	return names
}

// Engine runs the delivery of one deployment's functions.
type Engine struct {
	cfg     Config
	ns      topics.Namespace
	log     *slog.Logger
	prod    *kgo.Client // non-transactional producer: outputs, logs, heartbeats
	replies *replies
	metrics *metrics
	logs    *logLimiter
	runners []*runner

	// hostCalls counts invocations started on the runtime and hostBusy
	// those in flight: an invocation that crashed the runtime's host is
	// to blame only if it ran alone (see runner.deliver).
	hostCalls atomic.Int64
	hostBusy  atomic.Int32
}

// New checks cfg and connects the shared producer. Call Run, or Close if
// Run is never called.
func New(cfg Config) (*Engine, error) {
	if cfg.Deployment == nil {
		return nil, errors.New("create engine: Config.Deployment is nil")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = obs.HeartbeatInterval
	}
	if cfg.MaxPollRecords <= 0 {
		cfg.MaxPollRecords = 500
	}
	if cfg.TxnTimeout <= 0 {
		cfg.TxnTimeout = DefaultTxnTimeout
	}
	if cfg.RebalanceTimeout <= 0 {
		cfg.RebalanceTimeout = DefaultRebalanceTimeout
	}
	if cfg.CrashLimit <= 0 {
		cfg.CrashLimit = DefaultCrashLimit
	}
	cfg.Kafka.ClientID = ClientID(cfg.Kafka.ClientID, cfg.Instance)
	slot, err := control.ParseSlot(cfg.Slot)
	if err != nil {
		return nil, fmt.Errorf("create engine: %w", err)
	}
	cfg.slot = slot
	if len(cfg.Functions) == 0 {
		cfg.Functions = StreamFunctions(cfg.Deployment)
	}
	if len(cfg.Functions) == 0 {
		return nil, fmt.Errorf("create engine for deployment %s: %w", cfg.Deployment.Name, ErrNoFunctions)
	}
	var fns []descriptor.Function
	var longest time.Duration
	for _, name := range cfg.Functions {
		i := slices.IndexFunc(cfg.Deployment.Functions, func(f descriptor.Function) bool { return f.Name == name })
		if i < 0 || len(cfg.Deployment.Functions[i].Inputs()) == 0 {
			return nil, fmt.Errorf("create engine: function %q of deployment %s: %w", name, cfg.Deployment.Name, ErrNotStreamFunction)
		}
		f := cfg.Deployment.Functions[i]
		fns = append(fns, f)
		longest = max(longest, time.Duration(f.Delivery.Timeout))
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = longest
	}
	e := &Engine{
		cfg: cfg,
		ns:  cfg.Kafka.Namespace(),
		log: cfg.Logger.With(kit.KeyDeployment, cfg.Deployment.Name),
	}
	e.prod, err = cfg.Kafka.NewClient(kgo.ProducerLinger(0))
	if err != nil {
		return nil, fmt.Errorf("create engine producer: %w", err)
	}
	e.replies, err = newReplies(cfg.Kafka, e.ns.Topic(topics.Replies))
	if err != nil {
		e.prod.Close()
		return nil, err
	}
	e.metrics = newMetrics(cfg.Metrics)
	e.logs = newLogLimiter(cfg.Logs, newLogMetrics(cfg.Metrics), cfg.Deployment.Name, e.sendLog)
	for _, f := range fns {
		e.runners = append(e.runners, newRunner(e, f))
	}
	return e, nil
}

// Close releases what New opened, for an Engine whose Run was not called.
func (e *Engine) Close() {
	e.replies.close()
	e.prod.Close()
}

// Run consumes until ctx is done, then stops fetching, lets in-flight
// invocations finish (up to DrainTimeout), commits, flushes and leaves the
// groups. rt is the runtime invocations go to; Run does not close it.
func (e *Engine) Run(ctx context.Context, rt runtime.Runtime) error {
	defer e.Close()
	// The internal topics exist when the broker created them; against a
	// bare cluster the first service to need them creates them.
	internal := []topics.Spec{}
	for _, s := range topics.Internal() {
		if s.Name == topics.Logs || s.Name == topics.Heartbeats || s.Name == topics.Replies {
			internal = append(internal, s)
		}
	}
	if err := kit.EnsureTopics(ctx, e.prod, kit.InNamespace(e.ns, internal...)...); err != nil {
		e.log.Warn("create internal topics; continuing in case they exist", kit.KeyError, err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { e.replies.run(ctx) })
	errs := make([]error, len(e.runners))
	for i, r := range e.runners {
		wg.Go(func() { errs[i] = r.run(ctx, rt) })
		wg.Go(func() { r.heartbeats(ctx) })
	}
	wg.Wait()
	e.logs.stop()
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := e.prod.Flush(fctx); err != nil {
		errs = append(errs, fmt.Errorf("flush producer: %w", err))
	}
	return errors.Join(errs...)
}

// Ready reports whether every function has joined its consumer group, for
// the admin server's /readyz.
func (e *Engine) Ready(context.Context) error {
	for _, r := range e.runners {
		if !r.joined.Load() {
			return fmt.Errorf("function %s has not joined consumer group %s yet", r.fn.Name, r.group)
		}
	}
	return nil
}
