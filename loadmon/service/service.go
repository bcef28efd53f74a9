// Package service runs loadmon, the load monitor: it reads every
// function's consumer lag and its fnbox heartbeats, decides how many
// instances each function runs, and writes the decisions to _butter.scale
// for the deployer to apply (docs/loadmon.md). It is public so `butter up`
// can run it in-process; cmd/butter-loadmon is the same thing as its own
// binary.
//
// The lifecycle is explicit: New validates the configuration, Provision
// connects and reads the deployments and decisions, Serve decides until
// its context is done, Close releases what Provision took. Run does all
// four.
package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/loadmon/internal/decide"
	"github.com/buttercompass/butter/loadmon/internal/monitor"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/topics"
)

// Config configures loadmon.
type Config struct {
	// Addr serves /livez, /readyz and /metrics. Default 127.0.0.1:8084
	// (env BUTTER_LOADMON_ADDR).
	Addr string
	// Replica names this replica in decisions and logs. Default
	// <hostname>-<pid> (env BUTTER_LOADMON_REPLICA).
	Replica string
	// Interval is how often lag is read and decisions made. Default 1s
	// (env BUTTER_LOADMON_INTERVAL).
	Interval time.Duration
	// Cooldown is how long a lower instance count must be enough before
	// scaling down. Default 30s (env BUTTER_LOADMON_COOLDOWN).
	Cooldown time.Duration
	// Drain is the window the rate rule sizes a function to drain its lag
	// in. Default 10s (env BUTTER_LOADMON_DRAIN).
	Drain time.Duration
	// SessionTimeout is how long a replica that stopped heartbeating keeps
	// deciding before another takes over. Default 6s (env
	// BUTTER_LOADMON_SESSION_TIMEOUT).
	SessionTimeout time.Duration
	// HeartbeatInterval is the election group's heartbeat; default 1s.
	HeartbeatInterval time.Duration
	// Kafka reaches the cluster. RegisterFlags leaves its flags to
	// Kafka.RegisterFlags, so a host with its own (butter up) shares them.
	Kafka kit.KafkaConfig
	// Logger receives JSON logs. Default: JSON on stderr at info.
	Logger *slog.Logger
}

// DefaultConfig returns the configuration with no flags or env.
func DefaultConfig() Config {
	return Config{Addr: "127.0.0.1:8084", Interval: time.Second, Cooldown: 30 * time.Second, Drain: 10 * time.Second,
		SessionTimeout: 6 * time.Second, HeartbeatInterval: time.Second,
		Kafka: kit.KafkaConfig{Brokers: []string{kit.DefaultBrokers}}}
}

// RegisterFlags registers loadmon's own flags on fs, with BUTTER_* env
// fallbacks. The Kafka flags are registered with Kafka.RegisterFlags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	d := DefaultConfig()
	c.Kafka.Brokers = d.Kafka.Brokers
	fs.StringVar(&c.Addr, "addr", kit.EnvOr("BUTTER_LOADMON_ADDR", d.Addr), "admin `host:port` for /livez /readyz /metrics (env BUTTER_LOADMON_ADDR)")
	fs.StringVar(&c.Replica, "replica", kit.EnvOr("BUTTER_LOADMON_REPLICA", ""), "replica `name` in decisions and logs; default <hostname>-<pid> (env BUTTER_LOADMON_REPLICA)")
	fs.DurationVar(&c.Interval, "interval", kit.EnvDuration("BUTTER_LOADMON_INTERVAL", d.Interval), "how often lag is read and decisions made (env BUTTER_LOADMON_INTERVAL)")
	fs.DurationVar(&c.Cooldown, "cooldown", kit.EnvDuration("BUTTER_LOADMON_COOLDOWN", d.Cooldown), "a lower instance count must hold this long before scaling down (env BUTTER_LOADMON_COOLDOWN)")
	fs.DurationVar(&c.Drain, "drain", kit.EnvDuration("BUTTER_LOADMON_DRAIN", d.Drain), "the rate rule sizes a function to drain its lag within this window (env BUTTER_LOADMON_DRAIN)")
	fs.DurationVar(&c.SessionTimeout, "session-timeout", kit.EnvDuration("BUTTER_LOADMON_SESSION_TIMEOUT", d.SessionTimeout), "how long a silent replica keeps deciding before another takes over (env BUTTER_LOADMON_SESSION_TIMEOUT)")
	fs.DurationVar(&c.HeartbeatInterval, "heartbeat", kit.EnvDuration("BUTTER_LOADMON_HEARTBEAT", d.HeartbeatInterval), "election group heartbeat interval (env BUTTER_LOADMON_HEARTBEAT)")
}

// Validate checks the configuration cheaply, before anything starts.
func (c Config) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("check --addr: empty"))
	}
	if c.Interval <= 0 {
		errs = append(errs, fmt.Errorf("check --interval %s: must be positive", c.Interval))
	}
	if c.Cooldown < 0 || c.Drain <= 0 {
		errs = append(errs, fmt.Errorf("check --cooldown %s and --drain %s: the cooldown must not be negative and the drain window must be positive", c.Cooldown, c.Drain))
	}
	if c.HeartbeatInterval <= 0 || c.SessionTimeout < 3*c.HeartbeatInterval {
		errs = append(errs, fmt.Errorf("check --session-timeout %s and --heartbeat %s: the session must last at least three heartbeats", c.SessionTimeout, c.HeartbeatInterval))
	}
	if _, err := c.Kafka.Opts(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

var _ kit.Service = (*Service)(nil)

// Service is a loadmon replica.
type Service struct {
	cfg Config
	log *slog.Logger

	kafka   *kgo.Client
	monitor *monitor.Monitor
	admin   *kit.Admin

	followDone <-chan error
	cancel     context.CancelFunc
}

// New checks cfg and returns a service to Provision. Zero durations take
// their defaults.
func New(cfg Config) (*Service, error) {
	d := DefaultConfig()
	for _, p := range []struct{ v, def *time.Duration }{{&cfg.Interval, &d.Interval}, {&cfg.Drain, &d.Drain},
		{&cfg.SessionTimeout, &d.SessionTimeout}, {&cfg.HeartbeatInterval, &d.HeartbeatInterval}} {
		if *p.v == 0 {
			*p.v = *p.def
		}
	}
	if cfg.Replica == "" {
		cfg.Replica = kit.ProcessName("butter-loadmon")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("configure loadmon: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger, _ = kit.NewLogger(os.Stderr, "info")
	}
	return &Service{cfg: cfg, log: cfg.Logger.With("service", "loadmon", "replica", cfg.Replica)}, nil
}

// Provision connects to Kafka, creates the internal topics if missing,
// reads the deployments and the latest decisions, and binds the address.
// Call Close afterwards, whatever it returns.
func (s *Service) Provision(ctx context.Context) error {
	kcfg := s.cfg.Kafka
	kcfg.ClientID = "butter-loadmon"
	var err error
	s.kafka, err = kcfg.NewClient(kgo.RecordDeliveryTimeout(10 * time.Second))
	if err != nil {
		return err
	}
	ns := kcfg.Namespace()
	if err := kit.EnsureTopics(ctx, s.kafka, kit.InNamespace(ns, topics.Internal()...)...); err != nil {
		return fmt.Errorf("create internal topics: %w", err)
	}
	s.admin = kit.NewAdmin(s.cfg.Addr)
	s.monitor, err = monitor.New(monitor.Config{
		Kafka: kcfg, Client: s.kafka, Replica: s.cfg.Replica, Interval: s.cfg.Interval,
		Rule:           decide.Config{Cooldown: s.cfg.Cooldown, Drain: s.cfg.Drain},
		SessionTimeout: s.cfg.SessionTimeout, HeartbeatInterval: s.cfg.HeartbeatInterval,
		HeartbeatHistory: monitor.DefaultHeartbeatHistory, Metrics: monitor.NewMetrics(s.admin.Registry()), Logger: s.log,
	})
	if err != nil {
		return err
	}
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	ready, done := s.monitor.Follow(fctx)
	s.followDone = done
	select {
	case <-ready:
	case err := <-done:
		return fmt.Errorf("read deployments and decisions: %w", err)
	case <-ctx.Done():
		return fmt.Errorf("read deployments and decisions: %w", ctx.Err())
	}
	s.admin.AddReadyCheck("kafka", kit.KafkaReady(s.kafka))
	s.admin.AddReadyCheck("group", func(context.Context) error {
		select {
		case <-s.monitor.Joined():
			return nil
		default:
			return errors.New("not yet in the loadmon group")
		}
	})
	return s.admin.Listen()
}

// Addr is the bound admin address.
func (s *Service) Addr() string { return s.admin.Addr() }

// Owner reports whether this replica is the one deciding now.
func (s *Service) Owner() bool { return s.monitor.Owner() }

// Serve decides until ctx is done or any part (the admin server included)
// stops (kit.Admin.Supervise), then leaves the election group (another
// replica takes over at once) and stops the admin server.
func (s *Service) Serve(ctx context.Context) error {
	return s.admin.Supervise(ctx,
		kit.Part{Name: "decide", Run: s.monitor.Run},
		kit.Watch("follow deployments and heartbeats", s.followDone))
}

// Close releases the clients.
func (s *Service) Close() {
	if s.cancel != nil {
		s.cancel()
	}
	if s.monitor != nil {
		s.monitor.Close()
	}
	if s.kafka != nil {
		s.kafka.Close()
	}
}

// Run runs loadmon until ctx is done, telling out where it listens.
func Run(ctx context.Context, cfg Config, out io.Writer) error {
	s, err := New(cfg)
	if err != nil {
		return err
	}
	return kit.RunService(ctx, s, out, "loadmon on http://%s (/livez /readyz /metrics)")
}
