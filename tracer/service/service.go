// Package service runs the tracer: it indexes traces, logs, platform
// events, heartbeats, deployments and the lineage of user streams into an
// embedded SQLite index (a cache of the topics, rebuilt from them when
// deleted), and answers the JSON API and the web UI on one port with
// /livez, /readyz and /metrics. It is public so `butter up` can run the
// tracer in-process; cmd/butter-tracer is the same thing as its own
// binary.
//
// The lifecycle is explicit: New validates the configuration, Provision
// opens the index and binds the address, Serve ingests and answers until
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

	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/topics"
	"github.com/buttercompass/butter/tracer/internal/browse"
	"github.com/buttercompass/butter/tracer/internal/ingest"
	"github.com/buttercompass/butter/tracer/internal/server"
	"github.com/buttercompass/butter/tracer/internal/store"
)

// Config configures the tracer.
type Config struct {
	// Addr serves the API, the UI and /livez, /readyz, /metrics. Default
	// 127.0.0.1:8082 (env BUTTER_TRACER_ADDR).
	Addr string
	// DataDir holds the index (tracer.db). Default .butter/tracer (env
	// BUTTER_TRACER_DATA); butter up uses <data>/tracer. Each replica
	// needs its own.
	DataDir string
	// Discover is how often the topic list is refreshed to find new
	// streams. Default 5s (env BUTTER_TRACER_DISCOVER).
	Discover time.Duration
	// PruneEvery is how often rows past their topic's retention are
	// deleted; default 1m.
	PruneEvery time.Duration
	// Kafka reaches the cluster. RegisterFlags leaves its flags to
	// Kafka.RegisterFlags, so a host with its own (butter up) shares them.
	Kafka kit.KafkaConfig
	// Logger receives JSON logs. Default: JSON on stderr at info.
	Logger *slog.Logger
}

// DefaultConfig returns the configuration with no flags or env.
func DefaultConfig() Config {
	return Config{Addr: "127.0.0.1:8082", DataDir: ".butter/tracer", Discover: 5 * time.Second, PruneEvery: time.Minute,
		Kafka: kit.KafkaConfig{Brokers: []string{kit.DefaultBrokers}}}
}

// RegisterFlags registers the tracer's own flags on fs, with BUTTER_* env
// fallbacks. The Kafka flags are registered with Kafka.RegisterFlags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	d := DefaultConfig()
	c.Kafka.Brokers = d.Kafka.Brokers
	c.PruneEvery = d.PruneEvery
	fs.StringVar(&c.Addr, "addr", kit.EnvOr("BUTTER_TRACER_ADDR", d.Addr), "API, web UI and admin `host:port` (env BUTTER_TRACER_ADDR)")
	fs.StringVar(&c.DataDir, "data", kit.EnvOr("BUTTER_TRACER_DATA", d.DataDir), "index `dir`, one per replica; delete it to rebuild from the topics (env BUTTER_TRACER_DATA)")
	fs.DurationVar(&c.Discover, "discover", kit.EnvDuration("BUTTER_TRACER_DISCOVER", d.Discover), "how often to look for new streams (env BUTTER_TRACER_DISCOVER)")
}

// Validate checks the configuration cheaply, before anything starts.
func (c Config) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("check --addr: empty"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("check --data: empty; the index needs a directory"))
	}
	if c.Discover <= 0 {
		errs = append(errs, fmt.Errorf("check --discover %s: must be positive", c.Discover))
	}
	if _, err := c.Kafka.Opts(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

var _ kit.Service = (*Service)(nil)

// Service is a tracer replica.
type Service struct {
	cfg Config
	log *slog.Logger

	store  *store.Store
	ingest *ingest.Ingester
	admin  *kit.Admin
}

// New checks cfg and returns a service to Provision. Zero durations take
// their defaults.
func New(cfg Config) (*Service, error) {
	d := DefaultConfig()
	if cfg.Discover == 0 {
		cfg.Discover = d.Discover
	}
	if cfg.PruneEvery <= 0 {
		cfg.PruneEvery = d.PruneEvery
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("configure tracer: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger, _ = kit.NewLogger(os.Stderr, "info")
	}
	return &Service{cfg: cfg, log: cfg.Logger.With("service", "tracer")}, nil
}

// Provision opens the index, prepares the Kafka client and binds the
// address. Call Close afterwards, whatever it returns.
func (s *Service) Provision(context.Context) error {
	var err error
	if s.store, err = store.Open(s.cfg.DataDir); err != nil {
		return err
	}
	kcfg := s.cfg.Kafka
	kcfg.ClientID = "butter-tracer"
	s.admin = kit.NewAdmin(s.cfg.Addr)
	s.ingest, err = ingest.New(ingest.Config{Kafka: kcfg, Store: s.store, Discover: s.cfg.Discover,
		Registry: s.admin.Registry(), Logger: s.log})
	if err != nil {
		return err
	}
	s.admin.AddReadyCheck("kafka", s.ingest.KafkaReady())
	s.admin.AddReadyCheck("topics", func(context.Context) error {
		select {
		case <-s.ingest.Ready():
			return nil
		default:
			return errors.New("topics not listed yet")
		}
	})
	server.New(server.Config{Store: s.store, Lag: s.ingest.Lag, Browser: browse.New(kcfg, s.ingest.Admin()),
		Logger: s.log}).Register(s.admin.Handle)
	return s.admin.Listen()
}

// Addr is the bound address.
func (s *Service) Addr() string { return s.admin.Addr() }

// Serve ingests and answers until ctx is done or any part (the admin
// server included) stops (kit.Admin.Supervise). On shutdown /readyz turns
// 503, ingestion stops after the batch in hand is committed, then the
// server finishes in-flight requests (follow streams end).
func (s *Service) Serve(ctx context.Context) error {
	return s.admin.Supervise(ctx,
		kit.Part{Name: "index topics", Run: s.ingest.Run},
		kit.Part{Name: "prune", Run: func(ctx context.Context) error { s.pruneLoop(ctx); return nil }})
}

// pruneLoop deletes rows past their topic's retention.
func (s *Service) pruneLoop(ctx context.Context) {
	ret := store.Retention{Events: topics.DefaultRetention}
	for _, sp := range topics.Internal() {
		switch sp.Name {
		case topics.Traces:
			ret.Spans = sp.Retention
		case topics.Logs:
			ret.Logs = sp.Retention
		case topics.Events:
			ret.PlatformEvents = sp.Retention
		case topics.Heartbeats:
			ret.Instances = sp.Retention
		}
	}
	t := time.NewTicker(s.cfg.PruneEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.store.Prune(ctx, time.Now(), ret); err != nil && ctx.Err() == nil {
			s.log.Warn("prune failed; retrying later", kit.KeyError, err)
		}
	}
}

// Close releases the Kafka client and the index.
func (s *Service) Close() {
	if s.ingest != nil {
		s.ingest.Close()
	}
	if s.store != nil {
		if err := s.store.Close(); err != nil {
			s.log.Warn("close tracer index", kit.KeyError, err)
		}
	}
}

// Run runs a tracer until ctx is done, telling out where it listens.
func Run(ctx context.Context, cfg Config, out io.Writer) error {
	s, err := New(cfg)
	if err != nil {
		return err
	}
	return kit.RunService(ctx, s, out, "tracer API and web UI on http://%s/ (/v1/traces, /livez /readyz /metrics)")
}
