// Package service runs the gateway: HTTP in on deployed routes, request
// events out, replies back (DESIGN §7), with /livez, /readyz and /metrics
// on the same port. It is public so `butter up` can run the gateway
// in-process; cmd/butter-gateway is the same thing as its own binary.
//
// The lifecycle is explicit: New validates the configuration, Provision
// connects and rebuilds routes, API keys and async requests from their
// topics, Serve runs until its context is done, Close releases what
// Provision took. Run does all four.
package service

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/buttercompass/butter/gateway/internal/auth"
	"github.com/buttercompass/butter/gateway/internal/routes"
	"github.com/buttercompass/butter/gateway/internal/server"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/topics"
)

// SourceGateway is the CloudEvents source of the gateway's platform events.
const SourceGateway = "/butter/gateway"

// Config configures the gateway.
type Config struct {
	// Addr serves routes, /_butter/requests/{id} and /livez, /readyz,
	// /metrics. Default 127.0.0.1:8080 (env BUTTER_GATEWAY_ADDR).
	Addr string
	// Grace is how long a stopping gateway lets in-flight requests finish.
	// Default 35s: a little over the default route timeout.
	Grace time.Duration
	// Takeover is how long a replica waits for the replica that accepted an
	// async request to store its response before storing it itself
	// (env BUTTER_GATEWAY_TAKEOVER). Default 3s.
	Takeover time.Duration
	// AllowPrivateCallbacks lets X-Butter-Callback name loopback, private
	// and link-local addresses (env BUTTER_GATEWAY_ALLOW_PRIVATE_CALLBACKS).
	// Default false: callers cannot make the gateway POST into its network.
	AllowPrivateCallbacks bool
	// Limits bound slow clients and open connections: header and body
	// read timeouts, the keep-alive idle timeout and a cap on open
	// connections (see server.Limits for the defaults).
	Limits server.Limits
	// Pprof serves Go's profiles on /debug/pprof/ of Addr (env
	// BUTTER_GATEWAY_PPROF), for profiling the request path under load.
	// Default false: they show the process's internals to any caller.
	Pprof bool
	// Kafka reaches the cluster. RegisterFlags leaves its flags to
	// Kafka.RegisterFlags, so a host with its own (butter up) shares them.
	Kafka kit.KafkaConfig
	// Logger receives JSON logs. Default: JSON on stderr at info.
	Logger *slog.Logger
	// Tracer provides the request spans. Default: the global provider.
	Tracer trace.TracerProvider
}

// DefaultConfig returns the configuration with no flags or env.
func DefaultConfig() Config {
	return Config{Addr: "127.0.0.1:8080", Grace: 35 * time.Second, Takeover: 3 * time.Second, Limits: server.DefaultLimits(),
		Kafka: kit.KafkaConfig{Brokers: []string{kit.DefaultBrokers}}}
}

// RegisterFlags registers the gateway's own flags on fs, with BUTTER_*
// env fallbacks. The Kafka flags are registered with Kafka.RegisterFlags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	d := DefaultConfig()
	c.Kafka.Brokers = d.Kafka.Brokers
	fs.StringVar(&c.Addr, "addr", kit.EnvOr("BUTTER_GATEWAY_ADDR", d.Addr), "HTTP `host:port` for routes and admin endpoints (env BUTTER_GATEWAY_ADDR)")
	fs.DurationVar(&c.Grace, "grace", kit.EnvDuration("BUTTER_GATEWAY_GRACE", d.Grace), "how long in-flight requests may finish on shutdown (env BUTTER_GATEWAY_GRACE)")
	fs.BoolVar(&c.AllowPrivateCallbacks, "allow-private-callbacks", kit.EnvBool("BUTTER_GATEWAY_ALLOW_PRIVATE_CALLBACKS", d.AllowPrivateCallbacks),
		"let X-Butter-Callback reach loopback, private and link-local addresses (env BUTTER_GATEWAY_ALLOW_PRIVATE_CALLBACKS)")
	fs.DurationVar(&c.Limits.ReadHeaderTimeout, "read-header-timeout", kit.EnvDuration("BUTTER_GATEWAY_READ_HEADER_TIMEOUT", d.Limits.ReadHeaderTimeout),
		"how long a client may take to send a request's headers (env BUTTER_GATEWAY_READ_HEADER_TIMEOUT)")
	fs.DurationVar(&c.Limits.BodyTimeout, "body-timeout", kit.EnvDuration("BUTTER_GATEWAY_BODY_TIMEOUT", d.Limits.BodyTimeout),
		"time any request body gets to arrive, on top of its size at --min-body-rate; slower bodies get 408 (env BUTTER_GATEWAY_BODY_TIMEOUT)")
	fs.Int64Var(&c.Limits.MinBodyRate, "min-body-rate", int64(kit.EnvInt("BUTTER_GATEWAY_MIN_BODY_RATE", int(d.Limits.MinBodyRate))),
		"slowest body upload accepted, in `bytes/s` (env BUTTER_GATEWAY_MIN_BODY_RATE)")
	fs.DurationVar(&c.Limits.IdleTimeout, "idle-timeout", kit.EnvDuration("BUTTER_GATEWAY_IDLE_TIMEOUT", d.Limits.IdleTimeout),
		"close keep-alive connections idle this long (env BUTTER_GATEWAY_IDLE_TIMEOUT)")
	fs.IntVar(&c.Limits.MaxConns, "max-conns", kit.EnvInt("BUTTER_GATEWAY_MAX_CONNS", d.Limits.MaxConns),
		"most client connections open at once, further ones wait; 0 no cap (env BUTTER_GATEWAY_MAX_CONNS)")
	fs.BoolVar(&c.Pprof, "pprof", kit.EnvBool("BUTTER_GATEWAY_PPROF", d.Pprof),
		"serve Go's profiles on /debug/pprof/ of --addr, to anyone who can reach it (env BUTTER_GATEWAY_PPROF)")
	fs.DurationVar(&c.Takeover, "takeover", kit.EnvDuration("BUTTER_GATEWAY_TAKEOVER", d.Takeover), "wait before storing another replica's async response (env BUTTER_GATEWAY_TAKEOVER)")
}

// Validate checks the configuration cheaply, before anything starts.
func (c Config) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("check --addr: empty"))
	}
	if c.Grace < 0 {
		errs = append(errs, errors.New("check --grace: negative"))
	}
	if c.Limits.ReadHeaderTimeout < 0 || c.Limits.BodyTimeout < 0 || c.Limits.IdleTimeout < 0 {
		errs = append(errs, errors.New("check --read-header-timeout, --body-timeout and --idle-timeout: negative"))
	}
	if c.Limits.MinBodyRate < 0 {
		errs = append(errs, errors.New("check --min-body-rate: negative"))
	}
	if c.Limits.MaxConns < 0 {
		errs = append(errs, errors.New("check --max-conns: negative (0 means no cap)"))
	}
	if _, err := c.Kafka.Opts(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

var _ kit.Service = (*Service)(nil)

// Service is a gateway.
type Service struct {
	cfg     Config
	log     *slog.Logger
	replica string

	prod      *kgo.Client
	replies   *kgo.Client
	replyPos  server.ReplyPositions
	followers []*kit.Follower
	srv       *server.Server
	admin     *kit.Admin

	followDone chan error
	cancel     context.CancelFunc
}

// New checks cfg and returns a service to Provision.
func New(cfg Config) (*Service, error) {
	d := DefaultConfig()
	if cfg.Grace == 0 {
		cfg.Grace = d.Grace
	}
	if cfg.Takeover <= 0 {
		cfg.Takeover = d.Takeover
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("configure gateway: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger, _ = kit.NewLogger(os.Stderr, "info")
	}
	if cfg.Tracer == nil {
		cfg.Tracer = otel.GetTracerProvider()
	}
	id := make([]byte, 6)
	_, _ = rand.Read(id)
	replica := "gw-" + hex.EncodeToString(id)
	return &Service{cfg: cfg, replica: replica, log: cfg.Logger.With("service", "gateway", "replica", replica)}, nil
}

// Provision connects to Kafka, rebuilds routes, API keys and async
// requests from their topics, positions the replies consumer and binds the
// address. Call Close afterwards, whatever it returns.
func (s *Service) Provision(ctx context.Context) error {
	kcfg := s.cfg.Kafka
	kcfg.ClientID = "butter-gateway"
	var err error
	s.prod, err = kcfg.NewClient(kgo.ProducerLinger(0), kgo.RecordDeliveryTimeout(30*time.Second))
	if err != nil {
		return err
	}
	ns := kcfg.Namespace()
	if err := kit.EnsureTopics(ctx, s.prod, kit.InNamespace(ns, topics.Internal()...)...); err != nil {
		return fmt.Errorf("create internal topics: %w", err)
	}
	rt := routes.New(s.log)
	keys := auth.NewKeys(s.log)
	var requests *kit.Follower
	var srv *server.Server
	// The server is built after the admin server whose registry it
	// registers on; the options only run at Serve.
	adm := kit.NewAdmin(s.cfg.Addr, kit.ShutdownTimeout(s.cfg.Grace),
		kit.ServerOptions(func(h *http.Server) { srv.Configure(h) }),
		kit.WrapListener(func(ln net.Listener) net.Listener { return srv.Listener(ln) }))
	s.admin = adm
	srv = server.New(server.Config{
		Routes: rt, Auth: &auth.Authenticator{Keys: keys, JWKS: auth.NewKeySets(nil)},
		Producer: s.prod, Namespace: ns, Events: control.NewRecorder(s.prod, ns.Topic(topics.Events), SourceGateway),
		CatchUp: func(ctx context.Context) error { return requests.CatchUp(ctx) },
		Replica: s.replica, Takeover: s.cfg.Takeover, AllowPrivateCallbacks: s.cfg.AllowPrivateCallbacks, Metrics: adm.Registry(),
		Tracer: s.cfg.Tracer.Tracer("github.com/buttercompass/butter/gateway"), Logger: s.log, Limits: s.cfg.Limits,
	})
	s.srv = srv

	deps, err := kit.NewFollower(kcfg, []string{ns.Topic(topics.Deployments)}, rt.Apply, s.log,
		kgo.FetchMaxPartitionBytes(control.MaxRecordBytes), kgo.FetchMaxBytes(2*control.MaxRecordBytes))
	if err != nil {
		return err
	}
	s.followers = append(s.followers, deps)
	keyf, err := kit.NewFollower(kcfg, []string{ns.Topic(topics.APIKeys)}, keys.Apply, s.log)
	if err != nil {
		return err
	}
	s.followers = append(s.followers, keyf)
	requests, err = kit.NewFollower(kcfg, []string{ns.Topic(topics.Requests)}, s.srv.ApplyRequest, s.log)
	if err != nil {
		return err
	}
	s.followers = append(s.followers, requests)

	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.followDone = make(chan error, len(s.followers))
	for _, f := range s.followers {
		go func() { s.followDone <- f.Run(fctx) }()
	}
	for _, f := range s.followers {
		select {
		case <-f.Ready():
		case err := <-s.followDone:
			s.followDone <- err
			return fmt.Errorf("rebuild gateway state: %w", err)
		case <-ctx.Done():
			return fmt.Errorf("rebuild gateway state: %w", ctx.Err())
		}
	}

	since := s.srv.OldestPending()
	if !since.IsZero() {
		since = since.Add(-time.Second)
	}
	s.replyPos, err = server.ReplyStart(ctx, kadm.NewClient(s.prod), ns.Topic(topics.Replies), since)
	if err != nil {
		return err
	}
	// Replies are read committed: an exactly-once function writes its
	// reply in a transaction that may abort and be redone. Control records
	// are kept so their offsets count towards catching up with the end
	// offsets (RunReplies skips them).
	s.replies, err = kcfg.NewClient(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{ns.Topic(topics.Replies): s.replyPos.Offsets()}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	if err != nil {
		return err
	}
	s.log.Info("gateway state rebuilt", "routes", rt.Len())

	adm.AddReadyCheck("kafka", kit.KafkaReady(s.prod))
	s.srv.Register(adm.Handle)
	if s.cfg.Pprof {
		adm.Handle("/debug/pprof/", http.HandlerFunc(pprof.Index))
		adm.Handle("/debug/pprof/cmdline", http.HandlerFunc(pprof.Cmdline))
		adm.Handle("/debug/pprof/profile", http.HandlerFunc(pprof.Profile))
		adm.Handle("/debug/pprof/symbol", http.HandlerFunc(pprof.Symbol))
		adm.Handle("/debug/pprof/trace", http.HandlerFunc(pprof.Trace))
	}
	return adm.Listen()
}

// Addr is the bound HTTP address.
func (s *Service) Addr() string { return s.admin.Addr() }

// Serve answers requests until ctx is done, then drains: /readyz turns
// 503, in-flight requests get up to Grace to finish (their replies are
// still read), then everything stops.
func (s *Service) Serve(ctx context.Context) error {
	return s.admin.SuperviseBehind(ctx,
		[]kit.Part{kit.Watch("follow gateway state", s.followDone)},
		[]kit.Part{
			{Name: "replies reader", Run: func(ctx context.Context) error { return s.srv.RunReplies(ctx, s.replies, s.replyPos) }},
			{Name: "async janitor", Run: s.srv.RunJanitor},
		})
}

// Close releases the clients.
func (s *Service) Close() {
	if s.cancel != nil {
		s.cancel()
	}
	for _, f := range s.followers {
		f.Close()
	}
	if s.replies != nil {
		s.replies.Close()
	}
	if s.prod != nil {
		s.prod.Close()
	}
}

// Run runs a gateway until ctx is done, telling out where it listens.
func Run(ctx context.Context, cfg Config, out io.Writer) error {
	s, err := New(cfg)
	if err != nil {
		return err
	}
	return kit.RunService(ctx, s, out, "gateway on http://%s (/livez /readyz /metrics)")
}
