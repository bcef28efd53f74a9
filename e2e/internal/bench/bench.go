// Package bench measures the raw limits of this machine on the embedded
// broker (produce, consume, the consume→produce→commit loop of a function,
// request→reply latency) and writes them as the table of
// docs/benchmarks.md. Platform parts add their own figures to the same run,
// each compared with the raw row it cannot beat.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/broker-bridge/broker"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/topics"
)

// Raw rows: what Kafka alone does on this machine, with plain franz-go
// records carrying the platform's headers and no CloudEvents decoding.
// Rows added by platform parts name one of these as their Limit.
const (
	// RowProduce is the produce throughput of one client.
	RowProduce = "produce"
	// RowConsume is the throughput of a fresh consumer reading from the
	// first offset.
	RowConsume = "consume from first"
	// RowPipeline is the throughput of the at-least-once loop a function
	// instance runs: poll, produce one child per input, flush, commit.
	RowPipeline = "consume→produce→commit"

	// RowProduceCodec is RowProduce with every event built and encoded by
	// the envelope codec inside the clock.
	RowProduceCodec = RowProduce + " (with codec)"
	// RowConsumeCodec is RowConsume decoding every record with
	// envelope.FromRecord.
	RowConsumeCodec = RowConsume + " (with codec)"
	// RowPipelineCodec is RowPipeline decoding every input and encoding
	// its child with the envelope codec.
	RowPipelineCodec = RowPipeline + " (with codec)"
	// RowCodec is the in-process cost of the codec per event: decode,
	// build the child, encode.
	RowCodec = "codec decode+child+encode"
	// RowReplyP50 is the median request→reply round trip.
	RowReplyP50 = "request→reply p50"
	// RowReplyP99 is the 99th percentile request→reply round trip.
	RowReplyP99 = "request→reply p99"
	// RowReplyMean is the mean request→reply round trip.
	RowReplyMean = "request→reply mean"

	rowRoundTrip = "request→reply"
)

// Topics of the bench. They live on a broker started for the run, so the
// names only need to be distinct from each other; replies go to the
// platform's replies topic, as the gateway's will.
const (
	topicWarmup  = "bench.warmup"
	topicEvents  = "bench.events"
	topicResults = "bench.results"
	// topicCodec and topicResultsCodec hold what the "(with codec)" rows
	// write, so the raw rows' topics keep exactly N events.
	topicCodec        = "bench.events.codec"
	topicResultsCodec = "bench.results.codec"
	topicRequests     = "bench.requests"
	topicReplies      = topics.Replies

	groupPipeline      = "butter.bench.pipeline"
	groupPipelineCodec = "butter.bench.pipeline.codec"

	// benchPartitions is the partition count of the bench topics: the
	// default of a user stream.
	benchPartitions = topics.DefaultPartitions
)

// Config says how much to measure. The zero value is not useful: start from
// DefaultConfig or QuickConfig.
type Config struct {
	// Events is N, the number of events of each throughput measurement.
	// Default 200,000.
	Events int
	// Requests is the number of timed request→reply round trips. Default
	// 2,000.
	Requests int
	// Warmup is the number of round trips made before timing. Default 200.
	Warmup int
	// ReplyTimeout is how long one request waits for its reply before the
	// run fails. Default 10s.
	ReplyTimeout time.Duration
	// TempDir is where the broker's temporary data directory is made.
	// Default os.TempDir(); it must be on the disk being measured.
	TempDir string
	// Progress receives one line per measurement as it starts. Default:
	// nothing.
	Progress io.Writer
	// FnEvents is the number of events of each no-op function throughput
	// measurement and of the replay. Default 10,000.
	FnEvents int
	// ExecEvents is FnEvents for the exec platform at batch 1, which starts
	// a process per event. Default 500.
	ExecEvents int
	// ColdStarts is how many times each platform's cold start is measured;
	// the row is the median. Default 3.
	ColdStarts int
	// FnTimeout bounds each function measurement, start-up included.
	// Default 2m.
	FnTimeout time.Duration
	// GatewayClients is how many HTTP clients call the gateway at once in
	// its throughput measurement. Default 64.
	GatewayClients int
	// GatewayLoad is the number of timed requests the GatewayClients make
	// together, after a warm-up of two each. Default 10,000.
	GatewayLoad int
	// TimerTicks is the number of timed ticks of the timer jitter
	// measurement, one a second, after one untimed. Default 20.
	TimerTicks int
	// IdleFunctions is how many idle node deployments the idle memory
	// measurements deploy. Default 100.
	IdleFunctions int
	// Extra measurements run after the raw ones, on the same broker, and may
	// compare their rows with the raw rows. Functions() returns those of
	// fnbox.
	Extra []Measurement
}

// DefaultConfig is what `make bench` runs: the raw limits take well under
// a minute on two cores, Functions() a few more.
func DefaultConfig() Config {
	return Config{
		Events: 200_000, Requests: 2_000, Warmup: 200, ReplyTimeout: 10 * time.Second,
		FnEvents: 10_000, ExecEvents: 500, ColdStarts: 3, FnTimeout: 2 * time.Minute,
		GatewayClients: 64, GatewayLoad: 10_000, TimerTicks: 20, IdleFunctions: 100,
	}
}

// QuickConfig is a smoke run of a few seconds: the same code paths, figures
// too noisy to mean much.
func QuickConfig() Config {
	return Config{
		Events: 5_000, Requests: 100, Warmup: 20, ReplyTimeout: 10 * time.Second,
		FnEvents: 500, ExecEvents: 50, ColdStarts: 1, FnTimeout: time.Minute,
		GatewayClients: 64, GatewayLoad: 640, TimerTicks: 2, IdleFunctions: 10,
	}
}

// ErrConfig is wrapped by Validate for a configuration that cannot run.
var ErrConfig = errors.New("bad bench configuration")

// Validate checks that every count is usable.
func (c Config) Validate() error {
	var errs []error
	if c.Events < 1 {
		errs = append(errs, fmt.Errorf("%w: events is %d, want at least 1", ErrConfig, c.Events))
	}
	if c.Requests < 1 {
		errs = append(errs, fmt.Errorf("%w: requests is %d, want at least 1", ErrConfig, c.Requests))
	}
	if c.Warmup < 0 {
		errs = append(errs, fmt.Errorf("%w: warm-up is %d, want 0 or more", ErrConfig, c.Warmup))
	}
	if c.ReplyTimeout <= 0 {
		errs = append(errs, fmt.Errorf("%w: reply timeout is %s, want a positive duration", ErrConfig, c.ReplyTimeout))
	}
	if c.FnEvents < 1 {
		errs = append(errs, fmt.Errorf("%w: function events is %d, want at least 1", ErrConfig, c.FnEvents))
	}
	if c.ExecEvents < 1 {
		errs = append(errs, fmt.Errorf("%w: exec events is %d, want at least 1", ErrConfig, c.ExecEvents))
	}
	if c.ColdStarts < 1 {
		errs = append(errs, fmt.Errorf("%w: cold starts is %d, want at least 1", ErrConfig, c.ColdStarts))
	}
	if c.FnTimeout <= 0 {
		errs = append(errs, fmt.Errorf("%w: function timeout is %s, want a positive duration", ErrConfig, c.FnTimeout))
	}
	if c.GatewayClients < 1 {
		errs = append(errs, fmt.Errorf("%w: gateway clients is %d, want at least 1", ErrConfig, c.GatewayClients))
	}
	if c.GatewayLoad < 1 {
		errs = append(errs, fmt.Errorf("%w: gateway load is %d requests, want at least 1", ErrConfig, c.GatewayLoad))
	}
	if c.TimerTicks < 1 {
		errs = append(errs, fmt.Errorf("%w: timer ticks is %d, want at least 1", ErrConfig, c.TimerTicks))
	}
	if c.IdleFunctions < 1 {
		errs = append(errs, fmt.Errorf("%w: idle functions is %d, want at least 1", ErrConfig, c.IdleFunctions))
	}
	return errors.Join(errs...)
}

// Measurement is one thing to measure. Run adds its rows to the report; it
// runs after the raw measurements, so its rows may name raw rows as Limit.
type Measurement struct {
	// Name is printed to Config.Progress when the measurement starts.
	Name string
	// Run measures on env's broker and adds rows to rep.
	Run func(ctx context.Context, env *Env, rep *Report) error
	// Docker marks a measurement that runs containers: the run's broker
	// then also listens on the Docker bridge's gateway (Env's container
	// broker), and Run fails before measuring anything when no Docker
	// engine answers.
	Docker bool
}

// Raw returns the raw Kafka measurements, in the order they must run: each
// reads what the one before wrote.
func Raw() []Measurement {
	return []Measurement{
		{Name: RowProduce, Run: measureProduce},
		{Name: RowProduceCodec, Run: measureProduceCodec},
		{Name: RowConsume, Run: measureConsume},
		{Name: RowConsumeCodec, Run: measureConsumeCodec},
		{Name: RowPipeline, Run: measurePipeline},
		{Name: RowPipelineCodec, Run: measurePipelineCodec},
		{Name: RowCodec, Run: measureCodec},
		{Name: rowRoundTrip, Run: measureRoundTrip},
	}
}

// Env is what a measurement runs against: the run's broker and settings.
type Env struct {
	// Config is the run's configuration.
	Config Config
	// Kafka reaches the run's broker.
	Kafka kit.KafkaConfig
	// Broker is the embedded broker of the run.
	Broker *broker.Broker

	work  string // scratch directory of the run: function code, binaries
	tag   string // random, in the names of the run's deployments
	mu    sync.Mutex
	built map[string]string // command name → binary in work

	// containerBroker is where containers reach the broker, "" when no
	// measurement of the run is Docker.
	containerBroker string
}

// Client returns a client of the run's broker; opts come after the seed
// brokers, so they win.
func (e *Env) Client(opts ...kgo.Opt) (*kgo.Client, error) {
	return e.Kafka.NewClient(opts...)
}

// CreateTopics creates bench topics with benchPartitions partitions.
func (e *Env) CreateTopics(names ...string) error {
	for _, name := range names {
		if err := e.Broker.CreateTopic(topics.Spec{Name: name, Partitions: benchPartitions}); err != nil {
			return err
		}
	}
	return nil
}

// Run starts a broker on a temporary data directory, runs the raw
// measurements then cfg.Extra on it, and returns the report. The directory
// is removed when Run returns.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	dir, err := os.MkdirTemp(cfg.TempDir, "butter-bench-")
	if err != nil {
		return nil, fmt.Errorf("create bench data dir (set TMPDIR to a writable disk): %w", err)
	}
	defer os.RemoveAll(dir)
	work, err := os.MkdirTemp(cfg.TempDir, "butter-bench-work-")
	if err != nil {
		return nil, fmt.Errorf("create bench work dir (set TMPDIR to a writable disk): %w", err)
	}
	defer os.RemoveAll(work)

	bcfg := broker.Config{Addr: "127.0.0.1:0", DataDir: dir, Retention: topics.DefaultRetention}
	if slices.ContainsFunc(cfg.Extra, func(m Measurement) bool { return m.Docker }) {
		if bcfg.ContainerAddr, err = dockerGateway(ctx); err != nil {
			return nil, err
		}
	}
	b, err := broker.Start(bcfg)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	env := &Env{
		Config:          cfg,
		Kafka:           kit.KafkaConfig{Brokers: []string{b.Addr()}, ClientID: "butter-bench"},
		Broker:          b,
		work:            work,
		tag:             fmt.Sprintf("%06x", rand.Uint32()>>8),
		containerBroker: b.ContainerAddr(),
	}
	if err := env.CreateTopics(topicWarmup, topicEvents, topicResults, topicCodec, topicResultsCodec, topicRequests); err != nil {
		return nil, err
	}

	rep := &Report{
		Date:           start,
		GoVersion:      runtime.Version(),
		FranzGoVersion: moduleVersion("github.com/twmb/franz-go"),
		GOOS:           runtime.GOOS,
		GOARCH:         runtime.GOARCH,
		GOMAXPROCS:     runtime.GOMAXPROCS(0),
		NumCPU:         runtime.NumCPU(),
		Events:         cfg.Events,
		Requests:       cfg.Requests,
		Warmup:         cfg.Warmup,
		LoadAverage:    loadAverage(),
	}
	for _, m := range append(Raw(), cfg.Extra...) {
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "bench: %s\n", m.Name)
		}
		if err := m.Run(ctx, env, rep); err != nil {
			return nil, fmt.Errorf("measure %s: %w", m.Name, err)
		}
	}
	rep.Elapsed = time.Since(start)
	return rep, nil
}

// loadAverage returns the 1-minute load average of /proc/loadavg, or ""
// where there is none.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// moduleVersion returns the version of module path this binary was built
// with, or "unknown".
func moduleVersion(path string) string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, m := range info.Deps {
		if m.Path == path {
			if m.Replace != nil {
				return m.Replace.Version
			}
			return m.Version
		}
	}
	return "unknown"
}

// endOffsets returns the end offset of every partition of topic, as the
// broker reports it.
func endOffsets(ctx context.Context, cl *kgo.Client, topic string) (map[int32]int64, error) {
	listed, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	ends := map[int32]int64{}
	listed.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
	return ends, nil
}

// sum adds the offsets of a partition → offset map: for end offsets of a
// topic that was never trimmed, the number of records in it.
func sum(offsets map[int32]int64) int64 {
	var n int64
	for _, o := range offsets {
		n += o
	}
	return n
}

// rate returns n events over d as events per second.
func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		d = time.Nanosecond
	}
	return float64(n) / d.Seconds()
}
