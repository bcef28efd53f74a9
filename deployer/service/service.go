// Package service runs the deployer: its API and admin endpoints on one
// port, the desired-state store on _butter.deployments and the container
// manager. It is public so `butter up` can run the deployer in-process;
// cmd/butter-deployer is the same thing as its own binary.
//
// The lifecycle is explicit: New validates the configuration, Provision
// connects and rebuilds the desired state, Serve runs until its context is
// done, Close releases what Provision took. Run does all four.
package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/deployer/gobuild"
	"github.com/buttercompass/butter/deployer/internal/api"
	"github.com/buttercompass/butter/deployer/internal/principal"
	"github.com/buttercompass/butter/deployer/internal/reconcile"
	"github.com/buttercompass/butter/deployer/internal/runtime"
	"github.com/buttercompass/butter/deployer/internal/runtime/docker"
	"github.com/buttercompass/butter/deployer/internal/runtime/process"
	"github.com/buttercompass/butter/deployer/internal/store"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/topics"
)

// Runtimes the deployer can run instances with.
const (
	RuntimeProcess = "process"
	RuntimeDocker  = "docker"
)

// Config configures the deployer.
type Config struct {
	// Addr serves the API and /livez, /readyz, /metrics. Default
	// 127.0.0.1:8081 (env BUTTER_DEPLOYER_ADDR).
	Addr string
	// DataDir is the platform data directory: unpacked code goes to
	// <data>/deployments, instance records to <data>/instances. Default
	// .butter (env BUTTER_DATA).
	DataDir string
	// Token, if set, is required as a bearer token on mutating calls (env
	// BUTTER_TOKEN).
	Token string
	// Runtime runs instances whose descriptor names no runtime: process
	// (default) or docker (env BUTTER_RUNTIME). With docker, descriptors
	// may also choose runtime: process.
	Runtime string
	// DockerNetwork is the Docker network instances join (a bridge,
	// never host). Default bridge (env BUTTER_DOCKER_NETWORK).
	DockerNetwork string
	// DockerBrokers are the broker addresses containers reach. Default:
	// the Kafka brokers with loopback hosts replaced by the network's
	// gateway, where butter up's broker listens for containers (env
	// BUTTER_DOCKER_BROKERS).
	DockerBrokers []string
	// FnboxBin is the fnbox executable. Default: fnbox next to this
	// executable, else fnbox on PATH (env BUTTER_FNBOX_BIN).
	FnboxBin string
	// FnboxArgs come before fnbox's flags when FnboxBin is a program that
	// holds fnbox as a subcommand: the butter binary runs itself with
	// ["fnbox"], so a lone butter binary is the whole platform.
	FnboxArgs []string
	// Grace is how long a stopping instance gets between SIGTERM and
	// SIGKILL. Default 10s.
	Grace time.Duration
	// KeepInstances leaves instances running when the deployer stops, for
	// the next deployer to adopt; default is to stop them.
	KeepInstances bool
	// DieWithDeployer ties every instance to the deployer's process: the
	// kernel kills it when the deployer dies, even by kill -9. butter up
	// sets it; a standalone deployer leaves it off, so its instances
	// outlive a crash and are adopted.
	DieWithDeployer bool
	// BackoffBase and BackoffMax bound the restart backoff of crashed
	// instances. Default 1s and 30s.
	BackoffBase, BackoffMax time.Duration
	// GoBin is the go command that builds go-platform functions at deploy
	// time. Default: go on PATH (env BUTTER_GO).
	GoBin string
	// GoSDK is a directory holding the Go SDK module source
	// (sdk/go) functions build against. Default: the copy embedded in
	// the deployer (env BUTTER_GO_SDK).
	GoSDK string
	// GoCache is the build cache (GOCACHE) of those builds. Default
	// <data>/go/cache (env BUTTER_GO_CACHE).
	GoCache string
	// SecretKeyFile is the key that encrypts descriptor secrets (32
	// bytes, base64). Default <data>/secret.key, created on first start
	// (env BUTTER_SECRET_KEY_FILE).
	SecretKeyFile string
	// Kafka reaches the cluster. RegisterFlags leaves its flags to
	// Kafka.RegisterFlags, so a host with its own (butter up) shares them.
	Kafka kit.KafkaConfig
	// Logger receives JSON logs. Default: JSON on stderr at info.
	Logger *slog.Logger
}

// DefaultConfig returns the configuration with no flags or env.
func DefaultConfig() Config {
	return Config{Addr: "127.0.0.1:8081", DataDir: ".butter", Runtime: RuntimeProcess, Grace: 10 * time.Second,
		BackoffBase: time.Second, BackoffMax: 30 * time.Second, Kafka: kit.KafkaConfig{Brokers: []string{kit.DefaultBrokers}}}
}

// RegisterFlags registers the deployer's own flags on fs, with BUTTER_*
// env fallbacks. The Kafka flags are registered with Kafka.RegisterFlags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	d := DefaultConfig()
	c.Kafka.Brokers = d.Kafka.Brokers
	fs.StringVar(&c.Addr, "addr", kit.EnvOr("BUTTER_DEPLOYER_ADDR", d.Addr), "API and admin `host:port` (env BUTTER_DEPLOYER_ADDR)")
	fs.StringVar(&c.DataDir, "data", kit.EnvOr("BUTTER_DATA", d.DataDir), "platform data `dir` (env BUTTER_DATA)")
	c.Token = kit.EnvOr("BUTTER_TOKEN", "")
	fs.StringVar(&c.Runtime, "runtime", kit.EnvOr("BUTTER_RUNTIME", d.Runtime), "runs fnbox instances: process or docker (env BUTTER_RUNTIME)")
	fs.StringVar(&c.DockerNetwork, "docker-network", kit.EnvOr("BUTTER_DOCKER_NETWORK", "bridge"), "Docker `network` of instances with --runtime docker (env BUTTER_DOCKER_NETWORK)")
	c.DockerBrokers = kit.EnvList("BUTTER_DOCKER_BROKERS", nil)
	fs.Func("docker-brokers", "broker `host:port,...` as containers reach it; default the brokers with 127.0.0.1 replaced by the network's gateway (env BUTTER_DOCKER_BROKERS)", func(v string) error {
		c.DockerBrokers = nil
		for _, b := range strings.Split(v, ",") {
			if b = strings.TrimSpace(b); b != "" {
				c.DockerBrokers = append(c.DockerBrokers, b)
			}
		}
		return nil
	})
	fs.StringVar(&c.FnboxBin, "fnbox", kit.EnvOr("BUTTER_FNBOX_BIN", ""), "fnbox `executable`; default fnbox next to this binary, else on PATH (env BUTTER_FNBOX_BIN)")
	fs.DurationVar(&c.Grace, "grace", kit.EnvDuration("BUTTER_STOP_GRACE", d.Grace), "time between SIGTERM and SIGKILL when stopping an instance (env BUTTER_STOP_GRACE)")
	fs.BoolVar(&c.KeepInstances, "keep-instances", kit.EnvBool("BUTTER_KEEP_INSTANCES", false), "leave instances running on exit for the next deployer to adopt (env BUTTER_KEEP_INSTANCES)")
	fs.StringVar(&c.GoBin, "go", kit.EnvOr("BUTTER_GO", ""), "go `command` that builds go functions at deploy; default go on PATH (env BUTTER_GO)")
	fs.StringVar(&c.GoSDK, "go-sdk", kit.EnvOr("BUTTER_GO_SDK", ""), "Go SDK module source `dir` go functions build against; default the copy built into the deployer (env BUTTER_GO_SDK)")
	fs.StringVar(&c.GoCache, "go-cache", kit.EnvOr("BUTTER_GO_CACHE", ""), "build cache `dir` for go functions; default DATA/go/cache (env BUTTER_GO_CACHE)")
	fs.StringVar(&c.SecretKeyFile, "secret-key-file", kit.EnvOr("BUTTER_SECRET_KEY_FILE", ""), "`file` of the key that encrypts descriptor secrets; default DATA/secret.key, created on first start (env BUTTER_SECRET_KEY_FILE)")
	c.BackoffBase, c.BackoffMax = d.BackoffBase, d.BackoffMax
}

// Validate checks the configuration cheaply, before anything starts.
func (c Config) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("check --addr: empty"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("check --data: empty"))
	}
	switch c.Runtime {
	case RuntimeProcess, "":
	case RuntimeDocker:
		if c.DockerNetwork == "host" {
			errs = append(errs, errors.New("check --docker-network: instances never run on the host network; use a bridge network"))
		}
	default:
		errs = append(errs, fmt.Errorf("check --runtime %q: use process or docker", c.Runtime))
	}
	if _, err := c.Kafka.Opts(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// fnboxBin finds fnbox: the configured path, next to this executable, or
// on PATH.
func (c Config) fnboxBin() (string, error) {
	if c.FnboxBin != "" {
		return c.FnboxBin, nil
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "fnbox")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	p, err := exec.LookPath("fnbox")
	if err != nil {
		return "", fmt.Errorf("find fnbox: not next to the deployer nor on PATH; set --fnbox or BUTTER_FNBOX_BIN: %w", err)
	}
	return p, nil
}

var _ kit.Service = (*Service)(nil)

// Service is a deployer.
type Service struct {
	cfg Config
	log *slog.Logger

	kafka   *kgo.Client
	store   *store.Store
	runtime *process.Runtime
	docker  *docker.Runtime // with --runtime docker (runtimes.go)
	mux     *runtime.Mux
	rec     *reconcile.Reconciler
	admin   *kit.Admin

	storeDone chan error
	cancel    context.CancelFunc
}

// New checks cfg and returns a service to Provision.
func New(cfg Config) (*Service, error) {
	d := DefaultConfig()
	if cfg.Runtime == "" {
		cfg.Runtime = d.Runtime
	}
	if cfg.Grace <= 0 {
		cfg.Grace = d.Grace
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("configure deployer: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger, _ = kit.NewLogger(os.Stderr, "info")
	}
	return &Service{cfg: cfg, log: cfg.Logger.With("service", "deployer")}, nil
}

// Provision connects to Kafka, makes sure the internal topics fit a
// full-size deployment, rebuilds the desired state from the topic and binds
// the address. Call Close afterwards, whatever it returns.
func (s *Service) Provision(ctx context.Context) error {
	bin, err := s.cfg.fnboxBin()
	if err != nil && s.cfg.Runtime == RuntimeDocker {
		// Containers bring their own fnbox; only runtime: process
		// deployments need one here, and they fail with this error.
		s.log.Warn("no fnbox binary: deployments with runtime: process cannot start", "error", err)
		bin, err = "fnbox", nil
	}
	if err != nil {
		return err
	}
	kcfg := s.cfg.Kafka
	kcfg.ClientID = "butter-deployer"
	s.kafka, err = kcfg.NewClient(kgo.ProducerBatchMaxBytes(control.MaxRecordBytes), kgo.RecordDeliveryTimeout(30*time.Second))
	if err != nil {
		return err
	}
	ns := kcfg.Namespace()
	deployments, events := ns.Topic(topics.Deployments), ns.Topic(topics.Events)
	if err := kit.EnsureTopics(ctx, s.kafka, kit.InNamespace(ns, topics.Internal()...)...); err != nil {
		return fmt.Errorf("create internal topics: %w", err)
	}
	if err := s.fitDeploymentsTopic(ctx, deployments); err != nil {
		return err
	}
	s.store, err = store.New(kcfg, s.kafka, deployments, s.log)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.storeDone = make(chan error, 1)
	go func() { s.storeDone <- s.store.Run(sctx) }()
	select {
	case <-s.store.Ready():
	case err := <-s.storeDone:
		s.storeDone <- err
		return fmt.Errorf("rebuild desired state: %w", err)
	case <-ctx.Done():
		return fmt.Errorf("rebuild desired state from %s: %w", deployments, ctx.Err())
	}
	s.log.Info("desired state rebuilt", "deployments", len(s.store.List()))

	key, err := s.cfg.loadSecretKey(s.log)
	if err != nil {
		return err
	}
	s.checkSecrets(key)
	principals := principal.New(principal.Config{Kafka: s.cfg.Kafka, Client: s.kafka, Secret: key.Derive, Logger: s.log})
	s.runtime, err = process.New(process.Config{DataDir: s.cfg.DataDir, Bin: bin, BinArgs: s.cfg.FnboxArgs, Kafka: kcfg, Login: principals.Login, Grace: s.cfg.Grace, Logger: s.log, DieWithParent: s.cfg.DieWithDeployer,
		Go: gobuild.Config{Go: s.cfg.GoBin, SDK: s.cfg.GoSDK, Cache: s.cfg.GoCache}, Secrets: key})
	if err != nil {
		return err
	}
	if err := s.provisionRuntimes(ctx, kcfg, principals.Login, key); err != nil {
		return err
	}
	recorder := control.NewRecorder(s.kafka, events, control.SourceDeployer)
	s.rec = reconcile.New(reconcile.Config{Runtime: s.mux, Source: s.store, Events: recorder, Logger: s.log, Access: principals,
		BackoffBase: s.cfg.BackoffBase, BackoffMax: s.cfg.BackoffMax, KeepInstances: s.cfg.KeepInstances})
	if err := s.provisionScale(ctx, kcfg); err != nil {
		return err
	}

	s.admin = kit.NewAdmin(s.cfg.Addr, kit.ShutdownTimeout(s.cfg.Grace+5*time.Second))
	s.admin.AddReadyCheck("kafka", kit.KafkaReady(s.kafka))
	api.New(api.Config{Desired: s.store, Manager: s.rec, Events: recorder, Admin: kadm.NewClient(s.kafka), Kafka: s.kafka,
		Namespace: ns, Token: s.cfg.Token, Logger: s.log, Prepare: s.runtime.Prepare, Admit: s.admit, Secrets: key}).Register(s.admin.Handle)
	return s.admin.Listen()
}

// fitDeploymentsTopic raises the deployments topic's max.message.bytes,
// which was created (by the broker or EnsureTopics) with the default.
func (s *Service) fitDeploymentsTopic(ctx context.Context, topic string) error {
	var alter []kadm.AlterConfig
	for k, v := range control.DeploymentsTopicConfigs() {
		alter = append(alter, kadm.AlterConfig{Name: k, Value: kadm.StringPtr(v)})
	}
	resp, err := kadm.NewClient(s.kafka).AlterTopicConfigs(ctx, alter, topic)
	if err == nil {
		for _, r := range resp {
			err = errors.Join(err, r.Err)
		}
	}
	if err != nil {
		return fmt.Errorf("set max.message.bytes of %s (the deployer needs to alter its configs): %w", topic, err)
	}
	return nil
}

// Addr is the bound API address.
func (s *Service) Addr() string { return s.admin.Addr() }

// Serve runs the API and the reconciler until ctx is done or any of them
// (the admin server included) stops (kit.Admin.Supervise), then drains:
// /readyz turns 503, the reconciler stops instances (unless
// KeepInstances) and the server finishes in-flight requests.
func (s *Service) Serve(ctx context.Context) error {
	return s.admin.Supervise(ctx,
		kit.Part{Name: "reconciler", Run: s.reconcile},
		kit.Watch("follow desired state", s.storeDone))
}

// reconcile runs the reconciler; once it stopped the instances on its way
// out, the shared pools they ran in are stopped too (a pool still serving
// a member an earlier deployer left running stays).
func (s *Service) reconcile(ctx context.Context) error {
	err := s.rec.Run(ctx)
	if s.runtime != nil && !s.cfg.KeepInstances {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.Grace+5*time.Second)
		defer cancel()
		if perr := s.runtime.StopIdlePools(sctx); perr != nil {
			s.log.Warn("stop shared pools", kit.KeyError, perr)
		}
	}
	return err
}

// Close releases the clients and stops tailing instance logs.
func (s *Service) Close() {
	if s.cancel != nil {
		s.cancel()
	}
	if s.runtime != nil {
		s.runtime.Close()
	}
	if s.docker != nil {
		s.docker.Close()
	}
	if s.store != nil {
		s.store.Close()
	}
	if s.kafka != nil {
		s.kafka.Close()
	}
}

// Run runs a deployer until ctx is done, telling out where it listens.
func Run(ctx context.Context, cfg Config, out io.Writer) error {
	s, err := New(cfg)
	if err != nil {
		return err
	}
	return kit.RunService(ctx, s, out, "deployer API on http://%s/v1/deployments (/livez /readyz /metrics)")
}
