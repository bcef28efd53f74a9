// Package service runs the timer: its API and admin endpoints on one port,
// the schedule catalog read from _butter.deployments and _butter.timers,
// and the firing of the schedules this replica owns. It is public so
// `butter up` can run the timer in-process; cmd/butter-timer is the same
// thing as its own binary.
//
// The lifecycle is explicit: New validates the configuration, Provision
// connects and reads the schedules, Serve runs until its context is done
// and then drains, Close releases what Provision took. Run does all four.
package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/topics"
	"github.com/buttercompass/butter/timer/internal/api"
	"github.com/buttercompass/butter/timer/internal/catalog"
	"github.com/buttercompass/butter/timer/internal/firing"
)

// Config configures the timer.
type Config struct {
	// Addr serves the API and /livez, /readyz, /metrics. Default
	// 127.0.0.1:8083 (env BUTTER_TIMER_ADDR).
	Addr string
	// Token, if set, is required as a bearer token on POST and DELETE (env
	// BUTTER_TOKEN).
	Token string
	// Replica names this replica in the state it writes (firedBy) and in
	// logs. Default <hostname>-<pid> (env BUTTER_TIMER_REPLICA).
	Replica string
	// MissedAfter is how late a tick may fire and still count as on time;
	// later ticks are missed and follow the schedule's catchUp. Default
	// 10s, above the handover time after a crash, so a failover alone
	// never skips a tick (env BUTTER_TIMER_MISSED_AFTER).
	MissedAfter time.Duration
	// Drain is the shutdown window: on SIGTERM, ticks due within it are
	// fired before the replica leaves the group. Default 2s (env
	// BUTTER_TIMER_DRAIN).
	Drain time.Duration
	// SessionTimeout is how long a replica that stopped heartbeating
	// (kill -9, network split) keeps its schedules before another takes
	// them over. Default 6s, the broker's usual minimum (env
	// BUTTER_TIMER_SESSION_TIMEOUT).
	SessionTimeout time.Duration
	// HeartbeatInterval is how often a replica heartbeats; default 1s.
	HeartbeatInterval time.Duration
	// Kafka reaches the cluster. RegisterFlags leaves its flags to
	// Kafka.RegisterFlags, so a host with its own (butter up) shares them.
	Kafka kit.KafkaConfig
	// Logger receives JSON logs. Default: JSON on stderr at info.
	Logger *slog.Logger
	// Tracer provides the tick spans, a trace per tick. Default: the
	// global provider.
	Tracer trace.TracerProvider
}

// DefaultConfig returns the configuration with no flags or env.
func DefaultConfig() Config {
	return Config{Addr: "127.0.0.1:8083", MissedAfter: 10 * time.Second, Drain: 2 * time.Second,
		SessionTimeout: 6 * time.Second, HeartbeatInterval: time.Second,
		Kafka: kit.KafkaConfig{Brokers: []string{kit.DefaultBrokers}}}
}

// RegisterFlags registers the timer's own flags on fs, with BUTTER_* env
// fallbacks. The Kafka flags are registered with Kafka.RegisterFlags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	d := DefaultConfig()
	c.Kafka.Brokers = d.Kafka.Brokers
	fs.StringVar(&c.Addr, "addr", kit.EnvOr("BUTTER_TIMER_ADDR", d.Addr), "API and admin `host:port` (env BUTTER_TIMER_ADDR)")
	c.Token = kit.EnvOr("BUTTER_TOKEN", "")
	fs.StringVar(&c.Replica, "replica", kit.EnvOr("BUTTER_TIMER_REPLICA", ""), "replica `name` in state records and logs; default <hostname>-<pid> (env BUTTER_TIMER_REPLICA)")
	fs.DurationVar(&c.MissedAfter, "missed-after", kit.EnvDuration("BUTTER_TIMER_MISSED_AFTER", d.MissedAfter), "a tick fired later than this is missed and follows catchUp (env BUTTER_TIMER_MISSED_AFTER)")
	fs.DurationVar(&c.Drain, "drain", kit.EnvDuration("BUTTER_TIMER_DRAIN", d.Drain), "on shutdown, fire ticks due within this window before leaving (env BUTTER_TIMER_DRAIN)")
	fs.DurationVar(&c.SessionTimeout, "session-timeout", kit.EnvDuration("BUTTER_TIMER_SESSION_TIMEOUT", d.SessionTimeout), "how long a silent replica keeps its schedules (env BUTTER_TIMER_SESSION_TIMEOUT)")
	fs.DurationVar(&c.HeartbeatInterval, "heartbeat", kit.EnvDuration("BUTTER_TIMER_HEARTBEAT", d.HeartbeatInterval), "group heartbeat interval (env BUTTER_TIMER_HEARTBEAT)")
}

// Validate checks the configuration cheaply, before anything starts.
func (c Config) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("check --addr: empty"))
	}
	if handover := c.SessionTimeout + c.HeartbeatInterval + 2*time.Second; c.MissedAfter <= handover {
		// A failover takes about a session timeout: ticks due meanwhile
		// must still count as on time, or a crash would skip them.
		errs = append(errs, fmt.Errorf("check --missed-after %s: must be above the handover after a crash, --session-timeout + --heartbeat + 2s = %s", c.MissedAfter, handover))
	}
	if c.Drain < 0 {
		errs = append(errs, fmt.Errorf("check --drain %s: must not be negative", c.Drain))
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

// Service is a timer replica.
type Service struct {
	cfg Config
	log *slog.Logger

	kafka   *kgo.Client
	catalog *catalog.Catalog
	firing  *firing.Manager
	admin   *kit.Admin

	catalogDone chan error
	cancel      context.CancelFunc

	ensured sync.Map // stream → struct{}: tick streams known to exist
}

// New checks cfg and returns a service to Provision. Zero durations take
// their defaults.
func New(cfg Config) (*Service, error) {
	d := DefaultConfig()
	if cfg.MissedAfter == 0 {
		cfg.MissedAfter = d.MissedAfter
	}
	if cfg.SessionTimeout == 0 {
		cfg.SessionTimeout = d.SessionTimeout
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = d.HeartbeatInterval
	}
	if cfg.Replica == "" {
		cfg.Replica = kit.ProcessName("butter-timer")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("configure timer: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger, _ = kit.NewLogger(os.Stderr, "info")
	}
	return &Service{cfg: cfg, log: cfg.Logger.With("service", "timer", "replica", cfg.Replica)}, nil
}

// Provision connects to Kafka, creates the internal topics if missing,
// reads every schedule and its state, and binds the address. Call Close
// afterwards, whatever it returns.
func (s *Service) Provision(ctx context.Context) error {
	kcfg := s.cfg.Kafka
	kcfg.ClientID = "butter-timer"
	var err error
	s.kafka, err = kcfg.NewClient(kgo.RecordDeliveryTimeout(30 * time.Second))
	if err != nil {
		return err
	}
	ns := kcfg.Namespace()
	deployments, timersTopic := ns.Topic(topics.Deployments), ns.Topic(topics.Timers)
	if err := kit.EnsureTopics(ctx, s.kafka, kit.InNamespace(ns, topics.Internal()...)...); err != nil {
		return fmt.Errorf("create internal topics: %w", err)
	}
	parts, err := s.partitions(ctx, timersTopic)
	if err != nil {
		return err
	}
	s.catalog, err = catalog.New(kcfg, s.kafka, deployments, timersTopic, s.log)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.catalogDone = make(chan error, 1)
	go func() { s.catalogDone <- s.catalog.Run(cctx) }()
	select {
	case <-s.catalog.Ready():
	case err := <-s.catalogDone:
		s.catalogDone <- err
		return fmt.Errorf("read timer schedules: %w", err)
	case <-ctx.Done():
		return fmt.Errorf("read timer schedules from %s and %s: %w", deployments, timersTopic, ctx.Err())
	}
	s.log.Info("timer catalog read", "schedules", len(s.catalog.Defs(nil)))

	s.admin = kit.NewAdmin(s.cfg.Addr)
	metrics := firing.NewMetrics(s.admin.Registry())
	s.firing = firing.New(firing.Config{
		Kafka: kcfg, Namespace: ns, TimersTopic: timersTopic, Partitions: parts,
		Group: ns.Topic("butter-timer"), Replica: s.cfg.Replica, Catalog: s.catalog, EnsureStream: s.ensureStream,
		ForgetStream: func(stream string) { s.ensured.Delete(stream) },
		MissedAfter:  s.cfg.MissedAfter, SessionTimeout: s.cfg.SessionTimeout, HeartbeatInterval: s.cfg.HeartbeatInterval,
		Metrics: metrics, Logger: s.log, Tracer: s.tracer(),
	})
	s.admin.AddReadyCheck("kafka", kit.KafkaReady(s.kafka))
	s.admin.AddReadyCheck("group", func(context.Context) error {
		select {
		case <-s.firing.Joined():
			return nil
		default:
			return errors.New("not yet in the timer group")
		}
	})
	api.New(api.Config{Store: s.catalog, EnsureStream: s.ensureStream, Token: s.cfg.Token, MissedAfter: s.cfg.MissedAfter,
		Logger: s.log}).Register(s.admin.Handle)
	return s.admin.Listen()
}

// partitions returns the partition count of the timers topic, which
// decides the owner of every schedule, so all replicas must agree on it.
func (s *Service) partitions(ctx context.Context, topic string) (int32, error) {
	td, err := kadm.NewClient(s.kafka).ListTopics(ctx, topic)
	if err == nil {
		err = td.Error()
	}
	if err != nil {
		return 0, fmt.Errorf("describe %s: %w", topic, err)
	}
	n := int32(len(td[topic].Partitions))
	if n == 0 {
		return 0, fmt.Errorf("describe %s: no partitions", topic)
	}
	return n, nil
}

// ensureStream creates a tick stream with the stream defaults unless this
// replica already knows it exists.
func (s *Service) ensureStream(ctx context.Context, stream string) error {
	if _, ok := s.ensured.Load(stream); ok {
		return nil
	}
	ns := s.cfg.Kafka.Namespace()
	if err := kit.EnsureTopics(ctx, s.kafka, kit.InNamespace(ns, topics.Stream(stream))...); err != nil {
		return fmt.Errorf("create tick stream %s: %w", stream, err)
	}
	s.ensured.Store(stream, struct{}{})
	return nil
}

// Addr is the bound API address.
func (s *Service) Addr() string { return s.admin.Addr() }

// Serve fires ticks and serves the API until ctx is done or any of them
// (the admin server included) stops (kit.Admin.Supervise), then drains:
// /readyz turns 503, ticks due within Drain are fired (and the in-flight
// transaction finished) before the replica leaves the group, then the
// server finishes in-flight requests.
func (s *Service) Serve(ctx context.Context) error {
	// Firing stopping on its own (it could not join the group) stops the
	// replica too: a replica that fires nothing must not look alive.
	return s.admin.Supervise(ctx,
		kit.Part{Name: "fire schedules", Run: func(ctx context.Context) error { return s.firing.Run(ctx, s.cfg.Drain) }},
		kit.Watch("follow timer schedules", s.catalogDone))
}

// Close releases the clients.
func (s *Service) Close() {
	if s.firing != nil {
		s.firing.Close()
	}
	if s.cancel != nil {
		s.cancel()
	}
	if s.catalog != nil {
		s.catalog.Close()
	}
	if s.kafka != nil {
		s.kafka.Close()
	}
}

// Run runs a timer until ctx is done, telling out where it listens.
func Run(ctx context.Context, cfg Config, out io.Writer) error {
	s, err := New(cfg)
	if err != nil {
		return err
	}
	return kit.RunService(ctx, s, out, "timer API on http://%s/v1/timers (/livez /readyz /metrics)")
}

// tracer is the tick spans' tracer.
func (s *Service) tracer() trace.Tracer {
	tp := s.cfg.Tracer
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return tp.Tracer("github.com/buttercompass/butter/timer")
}
