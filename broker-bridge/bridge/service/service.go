// Package service runs the bridge (DESIGN §7): it reads the bridges of
// every deployment from _butter.deployments and runs them — vCenter
// sources and Kafka mirrors on the one replica that owns them, webhooks on every replica,
// sinks shared by consumer group — with /livez, /readyz, /metrics and the
// webhook endpoint on one port. It is public so `butter up` can run the
// bridge in-process; cmd/butter-bridge is the same thing as its own binary.
package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/broker-bridge/bridge/internal/mirror"
	"github.com/buttercompass/butter/broker-bridge/bridge/internal/secret"
	"github.com/buttercompass/butter/broker-bridge/bridge/internal/sink"
	"github.com/buttercompass/butter/broker-bridge/bridge/internal/vcenter"
	"github.com/buttercompass/butter/broker-bridge/bridge/internal/webhook"
	"github.com/buttercompass/butter/proto/bridges"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/topics"
)

// Config configures the bridge.
type Config struct {
	// Addr serves the webhooks and /livez, /readyz, /metrics. Default
	// 127.0.0.1:8085 (env BUTTER_BRIDGE_ADDR).
	Addr string
	// SecretKeyFile is the deployer's secret key, which opens the
	// secretEnv values bridges refer to (passwordFrom, tokenFrom,
	// secretFrom). Default ./.butter/secret.key, the deployer's default
	// (env BUTTER_SECRET_KEY_FILE). A missing file only fails the bridges
	// that need a sealed value.
	SecretKeyFile string
	// Replica names this replica in logs. Default <hostname>-<pid>.
	Replica string
	// SessionTimeout is how long a replica that stopped heartbeating keeps
	// the vCenter sources before another takes them over. Default 6s.
	SessionTimeout time.Duration
	// HeartbeatInterval is the group heartbeat. Default 1s.
	HeartbeatInterval time.Duration
	// Retry is the wait before a failed bridge starts again. Default 1s.
	Retry time.Duration
	// Kafka reaches the cluster; its flags are Kafka.RegisterFlags'.
	Kafka kit.KafkaConfig
	// Logger receives JSON logs. Default: JSON on stderr at info.
	Logger *slog.Logger
}

// DefaultConfig returns the configuration with no flags or env.
func DefaultConfig() Config {
	return Config{Addr: "127.0.0.1:8085", SecretKeyFile: filepath.Join(".butter", "secret.key"),
		SessionTimeout: 6 * time.Second, HeartbeatInterval: time.Second, Retry: time.Second,
		Kafka: kit.KafkaConfig{Brokers: []string{kit.DefaultBrokers}}}
}

// RegisterFlags registers the bridge's own flags on fs, with BUTTER_* env
// fallbacks.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	d := DefaultConfig()
	c.Kafka.Brokers = d.Kafka.Brokers
	fs.StringVar(&c.Addr, "addr", kit.EnvOr("BUTTER_BRIDGE_ADDR", d.Addr), "webhook and admin `host:port` (env BUTTER_BRIDGE_ADDR)")
	fs.StringVar(&c.SecretKeyFile, "secret-key-file", kit.EnvOr("BUTTER_SECRET_KEY_FILE", d.SecretKeyFile), "the deployer's secret key `file`, to open secretEnv values bridges name (env BUTTER_SECRET_KEY_FILE)")
	fs.StringVar(&c.Replica, "replica", kit.EnvOr("BUTTER_BRIDGE_REPLICA", ""), "replica `name` in logs; default <hostname>-<pid> (env BUTTER_BRIDGE_REPLICA)")
	fs.DurationVar(&c.SessionTimeout, "session-timeout", kit.EnvDuration("BUTTER_BRIDGE_SESSION_TIMEOUT", d.SessionTimeout), "how long a silent replica keeps the vCenter sources (env BUTTER_BRIDGE_SESSION_TIMEOUT)")
	fs.DurationVar(&c.HeartbeatInterval, "heartbeat", kit.EnvDuration("BUTTER_BRIDGE_HEARTBEAT", d.HeartbeatInterval), "group heartbeat interval (env BUTTER_BRIDGE_HEARTBEAT)")
	fs.DurationVar(&c.Retry, "retry", kit.EnvDuration("BUTTER_BRIDGE_RETRY", d.Retry), "wait before a failed bridge starts again (env BUTTER_BRIDGE_RETRY)")
}

// Validate checks the configuration cheaply.
func (c Config) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("check --addr: empty"))
	}
	if c.HeartbeatInterval <= 0 || c.SessionTimeout < 3*c.HeartbeatInterval {
		errs = append(errs, fmt.Errorf("check --session-timeout %s and --heartbeat %s: the session must last at least three heartbeats", c.SessionTimeout, c.HeartbeatInterval))
	}
	if c.Retry <= 0 {
		errs = append(errs, fmt.Errorf("check --retry %s: must be positive", c.Retry))
	}
	if _, err := c.Kafka.Opts(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

var _ kit.Service = (*Service)(nil)

// Service is a bridge replica.
type Service struct {
	cfg Config
	log *slog.Logger
	ns  topics.Namespace
	key *secret.Key

	kafka    *kgo.Client // webhooks, topic creation
	owners   *kgo.Client // the owners group
	follower *kit.Follower
	admin    *kit.Admin
	vcm      *vcenter.Metrics
	sinkm    *sink.Metrics
	mirrorm  *prometheus.CounterVec
	ksinkm   *prometheus.CounterVec

	mu      sync.Mutex
	desired map[string]*descriptor.Descriptor // deployment → descriptor with bridges
	ensured map[string]bool                   // streams known to exist

	owner   atomic.Bool
	joined  chan struct{}
	changed chan struct{} // a token: desired state or ownership changed

	followDone chan error
	cancel     context.CancelFunc
}

// New checks cfg and returns a service to Provision.
func New(cfg Config) (*Service, error) {
	d := DefaultConfig()
	if cfg.SessionTimeout == 0 {
		cfg.SessionTimeout = d.SessionTimeout
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = d.HeartbeatInterval
	}
	if cfg.Retry == 0 {
		cfg.Retry = d.Retry
	}
	if cfg.Replica == "" {
		cfg.Replica = kit.ProcessName("butter-bridge")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("configure bridge: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger, _ = kit.NewLogger(os.Stderr, "info")
	}
	return &Service{cfg: cfg, log: cfg.Logger.With("service", "bridge", "replica", cfg.Replica), ns: cfg.Kafka.Namespace(),
		desired: map[string]*descriptor.Descriptor{}, ensured: map[string]bool{},
		joined: make(chan struct{}), changed: make(chan struct{}, 1)}, nil
}

// Provision loads the secret key, connects, creates the internal topics
// if missing, reads the deployments and binds the address.
func (s *Service) Provision(ctx context.Context) error {
	var err error
	if s.key, err = secret.Load(s.cfg.SecretKeyFile); err != nil {
		return err
	}
	if s.key == nil {
		s.log.Warn("no secret key: bridges whose secretEnv values are sealed will not start", "file", s.cfg.SecretKeyFile)
	}
	kcfg := s.cfg.Kafka
	kcfg.ClientID = "butter-bridge"
	if s.kafka, err = kcfg.NewClient(kgo.RecordDeliveryTimeout(30 * time.Second)); err != nil {
		return err
	}
	if err := kit.EnsureTopics(ctx, s.kafka, kit.InNamespace(s.ns, topics.Internal()...)...); err != nil {
		return fmt.Errorf("create internal topics: %w", err)
	}
	s.follower, err = kit.NewFollower(kcfg, []string{s.ns.Topic(topics.Deployments)}, s.apply, s.log,
		kgo.FetchMaxPartitionBytes(control.MaxRecordBytes), kgo.FetchMaxBytes(control.MaxRecordBytes))
	if err != nil {
		return err
	}
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.followDone = make(chan error, 1)
	go func() { s.followDone <- s.follower.Run(fctx) }()
	select {
	case <-s.follower.Ready():
	case err := <-s.followDone:
		s.followDone <- err
		return fmt.Errorf("read deployments: %w", err)
	case <-ctx.Done():
		return fmt.Errorf("read deployments: %w", ctx.Err())
	}
	s.owners, err = kcfg.NewClient(
		kgo.ConsumerGroup(bridges.OwnersGroup(s.ns)),
		kgo.ConsumeTopics(s.ns.Topic(topics.Checkpoints)),
		kgo.Balancers(kgo.RangeBalancer()),
		kgo.DisableAutoCommit(),
		kgo.SessionTimeout(s.cfg.SessionTimeout),
		kgo.HeartbeatInterval(s.cfg.HeartbeatInterval),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { s.setOwner(m, true) }),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { s.setOwner(m, false) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { s.setOwner(m, false) }),
	)
	if err != nil {
		return err
	}
	s.admin = kit.NewAdmin(s.cfg.Addr)
	s.vcm = vcenter.NewMetrics(s.admin.Registry())
	s.sinkm = sink.NewMetrics(s.admin.Registry())
	s.mirrorm = mirror.NewMetrics(s.admin.Registry())
	s.ksinkm = mirror.NewSinkMetrics(s.admin.Registry())
	s.admin.AddReadyCheck("kafka", kit.KafkaReady(s.kafka))
	s.admin.AddReadyCheck("group", func(context.Context) error {
		select {
		case <-s.joined:
			return nil
		default:
			return errors.New("not yet in the bridge owners group")
		}
	})
	s.admin.Handle(webhook.Pattern, &webhook.Handler{Lookup: s.lookup, Kafka: s.kafka, Log: s.log, Metrics: webhook.NewMetrics(s.admin.Registry()),
		Events: control.NewRecorder(s.kafka, s.ns.Topic(topics.Events), "/butter/bridge")})
	return s.admin.Listen()
}

// setOwner notes whether this replica holds the checkpoints partition,
// which makes it the one running the vCenter sources.
func (s *Service) setOwner(m map[string][]int32, assigned bool) {
	if _, ok := m[s.ns.Topic(topics.Checkpoints)]; ok {
		if s.owner.Swap(assigned) != assigned {
			s.log.Info("vcenter sources", "owned", assigned)
		}
	}
	select {
	case <-s.joined:
	default:
		if assigned {
			close(s.joined)
		}
	}
	s.signal()
}

func (s *Service) signal() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// apply keeps the deployments that have bridges.
func (s *Service) apply(r *kgo.Record) {
	d, deleted, err := control.DecodeDeployment(r)
	name := string(r.Key)
	var desc *descriptor.Descriptor
	if err == nil && !deleted {
		desc, err = d.Parse()
	}
	if err != nil {
		s.log.Warn("skip deployment record", kit.KeyDeployment, name, kit.KeyError, err)
		return
	}
	s.mu.Lock()
	if desc == nil || len(desc.Bridges) == 0 {
		delete(s.desired, name)
	} else {
		s.desired[name] = desc
	}
	s.mu.Unlock()
	s.signal()
}

// lookup finds a webhook bridge for the handler, with its secrets open.
func (s *Service) lookup(deployment, bridge string) (*webhook.Target, bool) {
	s.mu.Lock()
	desc := s.desired[deployment]
	ensured := false
	s.mu.Unlock()
	if desc == nil {
		return nil, false
	}
	for _, b := range desc.Bridges {
		if b.Name != bridge || b.Kind() != descriptor.BridgeWebhook {
			continue
		}
		spec := b.Source.Webhook
		t := &webhook.Target{Spec: *spec, Topic: s.ns.Topic(b.Stream)}
		var err error
		if spec.TokenFrom != "" {
			if t.Token, err = s.key.Value(desc, spec.TokenFrom); err != nil {
				s.log.Error("webhook secret", kit.KeyDeployment, deployment, "bridge", bridge, kit.KeyError, err)
				return nil, false
			}
		}
		if spec.SecretFrom != "" {
			if t.Secret, err = s.key.Value(desc, spec.SecretFrom); err != nil {
				s.log.Error("webhook secret", kit.KeyDeployment, deployment, "bridge", bridge, kit.KeyError, err)
				return nil, false
			}
		}
		s.mu.Lock()
		ensured = s.ensured[b.Stream]
		s.mu.Unlock()
		if !ensured {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := s.ensureStream(ctx, b.Stream)
			cancel()
			if err != nil {
				s.log.Error("webhook stream", kit.KeyStream, b.Stream, kit.KeyError, err)
				return nil, false
			}
		}
		return t, true
	}
	return nil, false
}

// ensureStream creates a bridge's stream with the stream defaults unless
// it is known to exist: the deployer creates the streams of functions,
// not of bridges.
func (s *Service) ensureStream(ctx context.Context, stream string) error {
	s.mu.Lock()
	ok := s.ensured[stream]
	s.mu.Unlock()
	if ok {
		return nil
	}
	if err := kit.EnsureTopics(ctx, s.kafka, kit.InNamespace(s.ns, topics.Stream(stream))...); err != nil {
		return fmt.Errorf("create stream %s: %w", stream, err)
	}
	s.mu.Lock()
	s.ensured[stream] = true
	s.mu.Unlock()
	return nil
}

// Addr is the bound address.
func (s *Service) Addr() string { return s.admin.Addr() }

// Serve runs the bridges until ctx is done, then stops them (each ends
// its transaction or commits its offsets) and leaves the group.
func (s *Service) Serve(ctx context.Context) error {
	return s.admin.Supervise(ctx, kit.Watch("follow deployments", s.followDone), kit.Part{Name: "bridges", Run: s.run})
}

// run takes part in the owners' group (membership alone elects who runs
// the single-owner bridges) and runs the deployments' bridges until ctx is
// done. It stops every bridge before leaving the group, so a new owner
// starts sources only once these have stopped.
func (s *Service) run(ctx context.Context) error {
	gctx, stopGroup := context.WithCancel(ctx)
	defer stopGroup()
	groupDone := make(chan struct{})
	go func() {
		defer close(groupDone)
		for gctx.Err() == nil {
			// Records are not used: membership alone elects the owner.
			if fs := s.owners.PollFetches(gctx); fs.IsClientClosed() {
				return
			}
		}
	}()
	r := &runners{m: map[string]*runner{}}
	for {
		select {
		case <-ctx.Done():
			r.stopAll()
			stopGroup()
			<-groupDone
			s.owners.LeaveGroup()
			return nil
		case <-s.changed:
			s.reconcile(ctx, r)
		}
	}
}

// Close releases the clients.
func (s *Service) Close() {
	if s.cancel != nil {
		s.cancel()
	}
	if s.follower != nil {
		s.follower.Close()
	}
	if s.owners != nil {
		s.owners.Close()
	}
	if s.kafka != nil {
		s.kafka.Close()
	}
}

// Run runs a bridge until ctx is done, telling out where it listens.
func Run(ctx context.Context, cfg Config, out io.Writer) error {
	s, err := New(cfg)
	if err != nil {
		return err
	}
	return kit.RunService(ctx, s, out, "bridge on http://%s/v1/webhooks/{deployment}/{bridge} (/livez /readyz /metrics)")
}
