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
	"os"
	"os/signal"
	"path/filepath"
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
}

// Main runs fnbox with args (without the program name) until SIGINT or
// SIGTERM and returns the process exit code: control.ExitCodeLoadError when
// the function code cannot load, control.ExitCodeOrphan when the instance
// outlived its deployer or deployment, 2 for bad flags, 1 for any other
// failure.
func Main(args []string) int {
	var c config
	fs := flag.NewFlagSet("fnbox", flag.ContinueOnError)
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
	c.kafka.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	c.kafka.ClientID = engine.ClientID(engine.DefaultClientID, c.instance)
	registerPlatforms()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c); err != nil {
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

func run(ctx context.Context, c config) error {
	if err := kit.EnvError(); err != nil {
		return err
	}
	log, err := kit.NewLogger(os.Stderr, c.logLevel)
	if err != nil {
		return err
	}
	if c.descriptor == "" {
		c.descriptor = filepath.Join(c.code, "butter.yaml")
	}
	desc, err := descriptor.ParseFile(c.descriptor)
	if err != nil {
		return err
	}
	var fns []string
	for f := range strings.SplitSeq(c.functions, ",") {
		if f = strings.TrimSpace(f); f != "" {
			fns = append(fns, f)
		}
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
