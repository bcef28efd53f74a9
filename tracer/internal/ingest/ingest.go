// Package ingest reads the topics the tracer indexes into its store: the
// internal topics of traces, logs, platform events, heartbeats and
// deployments, and the lineage attributes of every user stream, found by
// refreshing the cluster's metadata.
//
// It reads without a consumer group, from the offsets the store keeps:
// each tracer replica has its own index and each poll is applied in one
// transaction with the offsets it reached, so a replica killed at any
// moment resumes exactly after the last batch it stored.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/tracer/internal/store"
)

// Config configures an Ingester.
type Config struct {
	Kafka kit.KafkaConfig
	Store *store.Store
	// Discover is how often the topic list is refreshed to find new user
	// streams and partitions; default 5s.
	Discover time.Duration
	// Registry, when set, receives the ingester's metrics.
	Registry prometheus.Registerer
	Logger   *slog.Logger
}

// Ingester follows the topics into the store.
type Ingester struct {
	cfg   Config
	log   *slog.Logger
	dec   *decoder
	cl    *kgo.Client
	adm   *kadm.Client
	ready chan struct{}
	once  sync.Once

	mu       sync.Mutex
	assigned map[string]map[int32]bool

	lagMu   sync.Mutex
	lags    map[string]int64
	lagTime time.Time

	records, skipped, batches prometheus.Counter
}

// New returns an ingester; Run starts it.
func New(cfg Config) (*Ingester, error) {
	if cfg.Discover <= 0 {
		cfg.Discover = 5 * time.Second
	}
	in := &Ingester{
		cfg: cfg, log: cfg.Logger, dec: newDecoder(cfg.Kafka.Namespace()),
		ready: make(chan struct{}), assigned: map[string]map[int32]bool{},
		records: prometheus.NewCounter(prometheus.CounterOpts{Name: "butter_tracer_records_total", Help: "Records indexed."}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "butter_tracer_records_skipped_total", Help: "Records that did not decode and were skipped."}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{Name: "butter_tracer_batches_total", Help: "Batches committed to the index."}),
	}
	if cfg.Registry != nil {
		cfg.Registry.MustRegister(in.records, in.skipped, in.batches)
	}
	var err error
	in.cl, err = cfg.Kafka.NewClient(
		// Records of aborted transactions (fnbox's exactly-once output)
		// never happened: they must not show in lineage.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// A stored offset past a topic's end (the topic was made again)
		// or before its start (retention) reads from its start.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxPartitionBytes(control.MaxRecordBytes),
		kgo.FetchMaxBytes(2*control.MaxRecordBytes),
		kgo.BrokerMaxReadBytes(3*control.MaxRecordBytes),
	)
	if err != nil {
		return nil, err
	}
	in.adm = kadm.NewClient(in.cl)
	return in, nil
}

// Admin returns the ingester's admin client, for others to share.
func (in *Ingester) Admin() *kadm.Client { return in.adm }

// Close closes the Kafka client.
func (in *Ingester) Close() { in.cl.Close() }

// Ready is closed once the first discovery assigned the topics.
func (in *Ingester) Ready() <-chan struct{} { return in.ready }

// KafkaReady is the ingester client's ready check.
func (in *Ingester) KafkaReady() func(context.Context) error { return kit.KafkaReady(in.cl) }

// Run reads until ctx is done.
func (in *Ingester) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	discoverDone := make(chan error, 1)
	go func() { discoverDone <- in.discoverLoop(ctx) }()
	err := in.consume(ctx)
	cancel()
	derr := <-discoverDone
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || err == nil) {
		return nil
	}
	return errors.Join(err, derr)
}

func (in *Ingester) consume(ctx context.Context) error {
	var last time.Time
	for {
		// A commit has a fixed cost (the statement setup and the pages
		// written to the WAL), so under a steady trickle records are
		// left to gather for up to minCommitInterval rather than
		// committed a few at a time. A full batch goes on at once.
		if wait := minCommitInterval - time.Since(last); wait > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
		}
		// Bounded batches keep each transaction short, so the API's
		// readers see progress and a kill loses little work.
		fs := in.cl.PollRecords(ctx, maxBatch)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if fs.IsClientClosed() {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				in.log.Warn("fetch failed; retrying", kit.KeyStream, t, kit.KeyPartition, p, kit.KeyError, err)
			}
		})
		b := store.Batch{Offsets: map[string]map[int32]int64{}}
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			n++
			if err := in.dec.add(&b, r); err != nil {
				in.skipped.Inc()
				in.log.Debug("record skipped", kit.KeyStream, r.Topic, kit.KeyPartition, r.Partition, kit.KeyOffset, r.Offset, kit.KeyError, err)
			}
		})
		if n < maxBatch {
			last = time.Now()
		} else {
			last = time.Time{}
		}
		if err := in.cfg.Store.Apply(ctx, &b); err != nil {
			return err
		}
		if n > 0 {
			in.records.Add(float64(n))
			in.batches.Inc()
		}
	}
}

// maxBatch is the most records applied in one transaction.
const maxBatch = 2000

// minCommitInterval spaces the commits of batches smaller than maxBatch:
// what the index shows is at most this much later than the topics.
const minCommitInterval = 50 * time.Millisecond

func (in *Ingester) discoverLoop(ctx context.Context) error {
	t := time.NewTicker(in.cfg.Discover)
	defer t.Stop()
	for {
		if err := in.discover(ctx); err != nil && ctx.Err() == nil {
			in.log.Warn("list topics failed; retrying", kit.KeyError, err)
		} else if err == nil {
			in.once.Do(func() { close(in.ready) })
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// discover assigns every wanted partition not yet read, at the offset the
// store has for it (its start when none), and stops reading topics that
// were deleted.
func (in *Ingester) discover(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	td, err := in.adm.ListTopics(ctx)
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	stored, err := in.cfg.Store.Offsets(ctx)
	if err != nil {
		return err
	}
	add := map[string]map[int32]kgo.Offset{}
	in.mu.Lock()
	defer in.mu.Unlock()
	for name, t := range td {
		if t.Err != nil || !in.dec.wants(name) {
			continue
		}
		for p := range t.Partitions {
			if in.assigned[name][p] {
				continue
			}
			if in.assigned[name] == nil {
				in.assigned[name] = map[int32]bool{}
			}
			in.assigned[name][p] = true
			o := kgo.NewOffset().AtStart()
			if next, ok := stored[name][p]; ok {
				o = kgo.NewOffset().At(next)
			}
			if add[name] == nil {
				add[name] = map[int32]kgo.Offset{}
			}
			add[name][p] = o
		}
	}
	var gone []string
	for name := range in.assigned {
		if _, ok := td[name]; !ok {
			gone = append(gone, name)
		}
	}
	if len(gone) > 0 {
		in.cl.PurgeTopicsFromConsuming(gone...)
		for _, name := range gone {
			delete(in.assigned, name)
			if err := in.cfg.Store.ForgetTopic(ctx, name); err != nil {
				return err
			}
			in.log.Info("topic deleted; no longer read", kit.KeyStream, name)
		}
	}
	if len(add) > 0 {
		in.cl.AddConsumePartitions(add)
		for name, ps := range add {
			in.log.Debug("reading topic", kit.KeyStream, name, "partitions", len(ps))
		}
	}
	return nil
}

// lagTTL is how long a computed lag is reused: the overview is polled by
// every open page, the group offsets change slower than that matters.
const lagTTL = 2 * time.Second

// Lag returns the lag of each function (deployment/function) of fns: the
// uncommitted events of its consumer group, -1 when unknown. Groups are
// described all at once and the answer reused for lagTTL.
func (in *Ingester) Lag(ctx context.Context, fns []string) map[string]int64 {
	in.lagMu.Lock()
	defer in.lagMu.Unlock()
	if time.Since(in.lagTime) < lagTTL && in.lags != nil {
		return in.lags
	}
	ns := in.cfg.Kafka.Namespace()
	groups := map[string]string{}
	names := make([]string, 0, len(fns))
	for _, fn := range fns {
		dep, f, _ := strings.Cut(fn, "/")
		g := ns.ConsumerGroup(dep, f)
		groups[fn] = g
		names = append(names, g)
	}
	out := map[string]int64{}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	lags, err := in.adm.Lag(ctx, names...)
	for fn, g := range groups {
		l, ok := lags[g]
		if err != nil || !ok || l.Error() != nil {
			out[fn] = -1
			continue
		}
		out[fn] = l.Lag.Total()
	}
	in.lags, in.lagTime = out, time.Now()
	return out
}
