// Package app is the fnbox command: the function container that runs a
// deployment's stream functions, consuming their bound streams in one
// consumer group per function and invoking the code through the
// deployment's platform runtime (DESIGN §6). It is a package so that one
// binary can hold it: the fnbox command and `butter fnbox` both call Main.
// Configuration is flags with BUTTER_* env fallbacks.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/buttercompass/butter/fnbox/box"
	"github.com/buttercompass/butter/fnbox/internal/engine"
	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/topics"
)

type config struct {
	code, descriptor, functions, instance, admin, logLevel string
	slot                                                   string
	txnTimeout, rebalanceTimeout                           time.Duration
	readyFile                                              string
	orphanGrace                                            time.Duration
	kafka                                                  kit.KafkaConfig
	// pool and poolPlatform are --pool and --pool-platform: run as a pool
	// (pool.go).
	pool, poolPlatform string
}

// Main runs fnbox with args (without the program name) until SIGINT or
// SIGTERM and returns the process exit code: control.ExitCodeLoadError when
// the function code cannot load, control.ExitCodeOrphan when the instance
// outlived its deployer or deployment, 2 for bad flags, 1 for any other
// failure. With --pool it runs as a pool of instances (pool.go).
func Main(args []string) int {
	c, err := parseFlags(args, nil, os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	registerPlatforms()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if c.pool != "" {
		err = runPool(ctx, c)
	} else {
		err = run(ctx, c)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fnbox:", err)
		if errors.Is(err, runtime.ErrLoad) {
			return control.ExitCodeLoadError
		}
		if errors.Is(err, errOrphan) {
			return control.ExitCodeOrphan
		}
		return 1
	}
	return 0
}

// parseFlags reads fnbox's command line: the process's own, or a pool
// member's PoolMember.Args, so a member means exactly what the same
// command line means alone. Flags fall back on BUTTER_* variables of the
// process environment; env, a member's PoolMember.Env, overrides those for
// this parse only (the process environment is never changed). Errors and
// -h go to output.
func parseFlags(args []string, env map[string]string, output io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("fnbox", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(&c.code, "code", kit.EnvOr("BUTTER_CODE", "."), "deployment code `dir` (env BUTTER_CODE)")
	fs.StringVar(&c.descriptor, "descriptor", kit.EnvOr("BUTTER_DESCRIPTOR", ""), "descriptor `file`; default DIR/butter.yaml (env BUTTER_DESCRIPTOR)")
	fs.StringVar(&c.functions, "functions", kit.EnvOr("BUTTER_FUNCTIONS", ""), "comma-separated functions to run; default every function with stream bindings (env BUTTER_FUNCTIONS)")
	fs.StringVar(&c.instance, "instance", kit.EnvOr("BUTTER_INSTANCE", box.DefaultInstance()), "instance `id`, stable across restarts for exactly-once functions (env BUTTER_INSTANCE)")
	fs.StringVar(&c.admin, "admin", kit.EnvOr("BUTTER_FNBOX_ADMIN", "127.0.0.1:0"), "serve /livez, /readyz, /metrics on `host:port` (env BUTTER_FNBOX_ADMIN)")
	fs.StringVar(&c.logLevel, "log-level", kit.EnvOr("BUTTER_LOG_LEVEL", "info"), "debug, info, warn or error (env BUTTER_LOG_LEVEL)")
	fs.StringVar(&c.readyFile, control.ReadyFileFlag, kit.EnvOr(control.ReadyFileEnv, ""), "create `file` once ready, holding the pid and admin address (env "+control.ReadyFileEnv+")")
	fs.DurationVar(&c.orphanGrace, control.OrphanGraceFlag, kit.EnvDuration(control.OrphanGraceEnv, time.Minute), "exit when the broker is unreachable or the deployment deleted for this `long`; 0 never (env "+control.OrphanGraceEnv+")")
	fs.StringVar(&c.slot, control.SlotFlag, kit.EnvOr(control.SlotEnv, ""), "fencing `slot` given by the deployer: exactly-once transactional ids are <group>.<slot> (env "+control.SlotEnv+"); default per instance id")
	fs.DurationVar(&c.txnTimeout, "txn-timeout", kit.EnvDuration("BUTTER_TXN_TIMEOUT", engine.DefaultTxnTimeout), "exactly-once transaction timeout (env BUTTER_TXN_TIMEOUT)")
	fs.DurationVar(&c.rebalanceTimeout, "rebalance-timeout", kit.EnvDuration("BUTTER_REBALANCE_TIMEOUT", engine.DefaultRebalanceTimeout), "how long a rebalance may wait for this instance besides one invocation (env BUTTER_REBALANCE_TIMEOUT)")
	fs.StringVar(&c.pool, control.PoolFlag, "", "run as a pool of `dir`: the instances of shared deployments listed in DIR/members, in one process with one runtime host (docs/fnbox.md#pool-mode)")
	fs.StringVar(&c.poolPlatform, "pool-platform", kit.EnvOr("BUTTER_POOL_PLATFORM", ""), "the `platform` a pool runs (node or python); default the first member's (env BUTTER_POOL_PLATFORM)")
	c.kafka.RegisterFlags(fs)
	if err := overlayEnv(fs, env); err != nil {
		fmt.Fprintln(output, err)
		return c, err
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.kafka.ClientID = engine.ClientID(engine.DefaultClientID, c.instance)
	return c, nil
}

// flagEnv finds the variable a flag falls back on in its usage: every
// flag of fnbox and of kit.KafkaConfig names it as "env BUTTER_...".
var flagEnv = regexp.MustCompile(`\benv (BUTTER_[A-Z0-9_]+)`)

// overlayEnv sets each flag of fs whose fallback variable env holds, as
// the process environment would have: before parsing, so a flag given on
// the command line still wins.
func overlayEnv(fs *flag.FlagSet, env map[string]string) error {
	if len(env) == 0 {
		return nil
	}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		m := flagEnv.FindStringSubmatch(f.Usage)
		if m == nil {
			return
		}
		if v, ok := env[m[1]]; ok && v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("parse env %s: %w", m[1], err))
			}
		}
	})
	return errors.Join(errs...)
}

// loadDeployment reads c's descriptor and the functions it names.
func loadDeployment(c config) (*descriptor.Descriptor, []string, error) {
	if c.descriptor == "" {
		c.descriptor = filepath.Join(c.code, "butter.yaml")
	}
	desc, err := descriptor.ParseFile(c.descriptor)
	if err != nil {
		return nil, nil, err
	}
	var fns []string
	for f := range strings.SplitSeq(c.functions, ",") {
		if f = strings.TrimSpace(f); f != "" {
			fns = append(fns, f)
		}
	}
	return desc, fns, nil
}

func run(ctx context.Context, c config) error {
	if err := kit.EnvError(); err != nil {
		return err
	}
	log, err := kit.NewLogger(os.Stderr, c.logLevel)
	if err != nil {
		return err
	}
	desc, fns, err := loadDeployment(c)
	if err != nil {
		return err
	}

	spans, err := c.kafka.NewClient()
	if err != nil {
		return err
	}
	defer spans.Close()
	shutdownTelemetry, err := kit.StartTelemetry(ctx, kit.TelemetryConfig{
		Service: "fnbox", Kafka: spans, Topic: c.kafka.Namespace().Topic(topics.Traces), Logger: log,
	})
	if err != nil {
		return err
	}
	defer func() { _ = shutdownTelemetry(context.WithoutCancel(ctx)) }()

	admin := kit.NewAdmin(c.admin)
	// Listen first: the address (often a random port) goes into every
	// heartbeat, so scrapers and `butter get` can find /metrics.
	if err := admin.Listen(); err != nil {
		return err
	}
	b, err := box.New(box.Config{
		Kafka: c.kafka, Deployment: desc, Dir: c.code, Functions: fns,
		Instance: c.instance, Admin: admin.Addr(), Logger: log, Metrics: admin.Registry(),
		Slot: c.slot, TxnTimeout: c.txnTimeout, RebalanceTimeout: c.rebalanceTimeout,
	})
	if err != nil {
		return err
	}
	admin.AddReadyCheck("fnbox", b.Ready)
	log.Info("fnbox starting", "deployment", desc.Name, "instance", c.instance, "admin", admin.Addr())

	// An orphaned instance stops like a signalled one: in-flight events
	// finish and are committed.
	ctx, orphaned := context.WithCancelCause(ctx)
	defer orphaned(nil)
	go func() {
		if err := watchOrphan(ctx, c.kafka, desc.Name, c.orphanGrace, log); err != nil {
			log.Error("exiting", kit.KeyError, err)
			orphaned(err)
		}
	}()
	go announceReady(ctx, b, c.readyFile, control.ReadyFile{PID: os.Getpid(), Instance: c.instance, Admin: admin.Addr()}, log)
	// The box and the admin server under kit's supervisor: either stopping
	// stops the other, /readyz turns 503 before the box drains.
	err = admin.Supervise(ctx, kit.Part{Name: "box", Run: func(bctx context.Context) error {
		return runBox(bctx, ctx, b, log)
	}})
	if cause := context.Cause(ctx); errors.Is(cause, errOrphan) {
		err = errors.Join(err, cause)
	}
	log.Info("fnbox stopped", "deployment", desc.Name)
	return err
}
