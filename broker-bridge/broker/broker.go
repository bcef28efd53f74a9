// Package broker runs the embedded broker: franz-go's kfake with on-disk
// persistence, a single-node Kafka-protocol broker any Kafka client can use.
//
// It is what `butter up` and `butter broker` start when no existing cluster
// is given. Acknowledged records are written to the data directory before
// the produce response is sent, so they survive kill -9 of the process; with
// Sync they also survive a power cut (an fsync per batch).
package broker

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/topics"
)

// Config configures the embedded broker. The zero value is not useful:
// start from DefaultConfig or RegisterFlags.
type Config struct {
	// Addr is the host:port to listen on and to advertise to clients.
	// Default 127.0.0.1:9092; port 0 picks a free port.
	Addr string
	// ContainerAddr, if set, is a second address the broker listens on,
	// for clients in containers that cannot reach Addr (127.0.0.1 is the
	// container's own): typically the Docker bridge gateway, 172.17.0.1.
	// A host without a port takes Addr's port. Each client is advertised
	// the address it connected to, so host and container clients both
	// work; SASL and ACLs apply on both. Default none (env
	// BUTTER_BROKER_CONTAINER_ADDR).
	ContainerAddr string
	// DataDir is the platform data directory; the broker keeps its
	// segments, offsets and metadata in DataDir/broker. Default ./.butter.
	// Empty runs in memory (tests only).
	DataDir string
	// Sync fsyncs every produced batch. Default off: records then survive
	// a process crash (they are in the OS page cache) but not a power cut,
	// like Kafka's default log.flush settings.
	Sync bool
	// Retention is the default retention of topics created without one.
	// Default 7 days; -1 keeps forever.
	Retention time.Duration
	// AutoCreate lets producers and consumers create topics by naming
	// them. Default off: streams are created explicitly, so a typo in a
	// stream name is an error instead of a new empty topic.
	AutoCreate bool
	// AdminAddr is where Run serves /livez, /readyz and /metrics. Default
	// 127.0.0.1:8085 (the broker-bridge port); empty serves none.
	AdminAddr string
	// Logger receives broker logs. Default: discard.
	Logger *slog.Logger
	// Secure requires SASL/SCRAM-SHA-256 logins and enforces ACLs
	// (DESIGN §8a): the admin credential is made on first start and kept
	// in DataDir/client.properties. Default on in DefaultConfig and
	// RegisterFlags (--insecure-broker turns it off); the zero Config,
	// which tests use, is an open broker.
	Secure bool
	// AdminPassword, when set, is the admin's password instead of the one
	// in DataDir/client.properties (which is rewritten with it): how a
	// container platform hands the same secret to the broker and to the
	// services that log in as admin (env BUTTER_BROKER_ADMIN_PASSWORD; no
	// flag, flags show in ps). Default empty: made on first start.
	AdminPassword string
	// Repair moves what the broker cannot load from DataDir into
	// DataDir/broker/quarantine/<time>/ and starts without it, logging
	// what it moved (repair.go). Default off: such a start fails with a
	// *LoadError naming the partition and file.
	Repair bool
}

// DefaultConfig returns the configuration `butter broker` runs with when
// given no flags.
func DefaultConfig() Config {
	return Config{
		Addr:      "127.0.0.1:9092",
		DataDir:   ".butter",
		Retention: topics.DefaultRetention,
		AdminAddr: "127.0.0.1:8085",
		Secure:    true,
	}
}

// RegisterFlags binds the configuration to flags, with BUTTER_BROKER_*
// environment variables as defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	d := DefaultConfig()
	fs.StringVar(&c.Addr, "addr", envOr("BUTTER_BROKER_ADDR", d.Addr), "broker listen and advertised `host:port` (env BUTTER_BROKER_ADDR)")
	fs.StringVar(&c.ContainerAddr, "container-addr", envOr("BUTTER_BROKER_CONTAINER_ADDR", ""), "also listen on `host[:port]` for clients in containers, e.g. the Docker bridge gateway 172.17.0.1 (env BUTTER_BROKER_CONTAINER_ADDR)")
	fs.StringVar(&c.DataDir, "data", envOr("BUTTER_DATA", d.DataDir), "platform data `dir`; the broker's files go in dir/broker (env BUTTER_DATA)")
	fs.BoolVar(&c.Sync, "sync", os.Getenv("BUTTER_BROKER_SYNC") == "true", "fsync every produced batch (env BUTTER_BROKER_SYNC=true)")
	fs.DurationVar(&c.Retention, "retention", d.Retention, "default retention of new topics; -1ns keeps forever")
	fs.BoolVar(&c.AutoCreate, "auto-create", false, "create topics when clients name unknown ones")
	fs.StringVar(&c.AdminAddr, "admin", envOr("BUTTER_BRIDGE_ADMIN", d.AdminAddr), "serve /livez, /readyz, /metrics on `host:port`; empty for none (env BUTTER_BRIDGE_ADMIN)")
	c.RegisterSecurityFlags(fs)
}

// RegisterSecurityFlags binds --insecure-broker, which `butter up` shares.
func (c *Config) RegisterSecurityFlags(fs *flag.FlagSet) {
	c.Secure = os.Getenv("BUTTER_INSECURE_BROKER") != "true"
	c.AdminPassword = os.Getenv("BUTTER_BROKER_ADMIN_PASSWORD")
	fs.Var(insecureFlag{&c.Secure}, "insecure-broker", "accept any Kafka client without login or ACLs, for experiments only (env BUTTER_INSECURE_BROKER=true)")
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// Broker is a running embedded broker.
type Broker struct {
	cluster *kfake.Cluster
	addr    string
	// containerAddr is the bound Config.ContainerAddr, "" without one.
	containerAddr string
	lock          *os.File // holds the data directory's lock; nil without one
	admin         kit.ClientProperties
}

// Start opens the data directory, listens and creates the internal topics
// that do not exist yet. Close stops it.
func Start(cfg Config) (*Broker, error) {
	host, port, err := splitAddr(cfg.Addr)
	if err != nil {
		return nil, err
	}
	retention := int64(-1)
	if cfg.Retention > 0 {
		retention = cfg.Retention.Milliseconds()
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.ClusterID("butter"),
		kfake.DefaultNumPartitions(int(topics.DefaultPartitions)),
		kfake.BrokerConfigs(map[string]string{"log.retention.ms": strconv.FormatInt(retention, 10)}),
	}
	var containerAddr string
	// kfake always dials 127.0.0.1; listen on the host asked for (and for
	// containers, listen.go).
	opts = append(opts, kfake.ListenFn(func(network, _ string) (net.Listener, error) {
		ln, extra, err := listenAll(network, net.JoinHostPort(host, strconv.Itoa(port)), cfg.ContainerAddr)
		containerAddr = extra
		return ln, err
	}))
	if cfg.ContainerAddr != "" {
		opts = append(opts, kfake.AdvertiseConnAddr())
	}
	if cfg.Logger != nil {
		opts = append(opts, kfake.WithLogger(slogLogger{cfg.Logger}))
	}
	var lock *os.File
	if dir := cfg.dir(); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create broker data dir: %w", err)
		}
		if lock, err = lockDir(dir); err != nil {
			return nil, err
		}
		opts = append(opts, kfake.DataDir(dir))
	}
	unlock := func() {
		if lock != nil {
			lock.Close()
		}
	}
	if cfg.Sync {
		opts = append(opts, kfake.SyncWrites())
	}
	if cfg.AutoCreate {
		opts = append(opts, kfake.AllowAutoTopicCreation())
	}
	admin, sec, err := cfg.security()
	if err != nil {
		unlock()
		return nil, err
	}
	opts = append(opts, sec...)
	c, err := openCluster(cfg, opts) // repair.go: a data dir that cannot be loaded
	if err != nil {
		unlock()
		return nil, err
	}
	b := &Broker{cluster: c, addr: c.ListenAddrs()[0], containerAddr: containerAddr, lock: lock, admin: admin}
	b.admin.Brokers = []string{b.addr}
	if err := cfg.writeClientProperties(b.admin); err != nil {
		b.Close()
		return nil, err
	}
	for _, s := range topics.Internal() {
		if err := b.CreateTopic(s); err != nil {
			b.Close()
			return nil, err
		}
	}
	return b, nil
}

// Addr returns the address clients connect to.
func (b *Broker) Addr() string { return b.addr }

// ContainerAddr returns the address clients in containers connect to
// (Config.ContainerAddr, bound), or "" when the broker has none.
func (b *Broker) ContainerAddr() string { return b.containerAddr }

// Kafka returns how platform code reaches this broker: its address and,
// on a secure broker, the admin login.
func (b *Broker) Kafka() kit.KafkaConfig {
	return kit.KafkaConfig{Brokers: []string{b.addr}, SASLMechanism: b.admin.Mechanism, SASLUser: b.admin.User, SASLPassword: b.admin.Password}
}

// CreateTopic creates a topic from its spec; an existing topic is left as
// it is.
func (b *Broker) CreateTopic(s topics.Spec) error {
	err := b.cluster.CreateTopic(s.Name, s.PartitionCount(), s.Configs())
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", s.Name, err)
	}
	return nil
}

// Close flushes the data directory and stops listening.
func (b *Broker) Close() {
	b.cluster.Close()
	if b.lock != nil {
		b.lock.Close() // releases the lock
	}
}

// lockDir takes the data directory's lock: two brokers writing one
// directory would each overwrite the other's segments, losing
// acknowledged events. The lock goes with the process, however it ends.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock broker data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("broker data dir %s is in use by another broker (another butter up or butter broker with the same --data): %w", dir, ErrDataDirInUse)
		}
		return nil, fmt.Errorf("lock broker data dir %s: %w", dir, err)
	}
	return f, nil
}

// ErrDataDirInUse means another broker holds the data directory.
var ErrDataDirInUse = errors.New("data directory in use")

func splitAddr(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("broker address %q: want host:port: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("broker address %q: port %q is not a number from 0 to 65535", addr, p)
	}
	return host, port, nil
}

// slogLogger adapts slog to kfake's logger.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Logf(level kfake.LogLevel, msg string, args ...any) {
	// kfake logs every request at info: that is debug detail for us.
	lv := slog.LevelDebug
	switch level {
	case kfake.LogLevelError:
		lv = slog.LevelError
	case kfake.LogLevelWarn:
		lv = slog.LevelWarn
	}
	ctx := context.Background()
	if s.l.Enabled(ctx, lv) {
		s.l.Log(ctx, lv, fmt.Sprintf(msg, args...), "component", "broker")
	}
}

// Run starts the broker and its admin server, writes "broker listening on
// ADDR" to out once clients can connect, and serves until ctx is done.
func Run(ctx context.Context, cfg Config, out io.Writer) error {
	b, err := Start(cfg)
	if err != nil {
		return err
	}
	defer b.Close()
	serve, err := ListenAdmin(cfg.AdminAddr, out, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "broker listening on %s (data %s)\n", b.Addr(), cfg.Where())
	cfg.sayAuth(out)
	return serve(ctx)
}

// ListenAdmin binds the broker-bridge admin server (/livez, /readyz with
// the ready check if any, /metrics) on addr and says where on out. The
// returned serve blocks until ctx is done. An empty addr serves nothing.
func ListenAdmin(addr string, out io.Writer, ready func(context.Context) error) (serve func(context.Context) error, err error) {
	if addr == "" {
		return func(ctx context.Context) error { <-ctx.Done(); return nil }, nil
	}
	admin := kit.NewAdmin(addr)
	if ready != nil {
		admin.AddReadyCheck("kafka", ready)
	}
	if err := admin.Listen(); err != nil {
		return nil, fmt.Errorf("admin server (--admin): %w", err)
	}
	fmt.Fprintf(out, "admin on http://%s (/livez /readyz /metrics)\n", admin.Addr())
	return admin.Serve, nil
}

func (c Config) dir() string {
	if c.DataDir == "" {
		return ""
	}
	return filepath.Join(c.DataDir, "broker")
}

// Where says where the broker keeps its data, for humans.
func (c Config) Where() string {
	if c.DataDir == "" {
		return "in memory"
	}
	return c.dir()
}
