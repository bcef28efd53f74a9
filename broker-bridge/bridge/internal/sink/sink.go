// Package sink is the HTTP sink: it reads a stream in a consumer group of
// its own and posts each event to an endpoint in CloudEvents HTTP binary
// mode (sdk-go's protocol/http), one at a time per partition so the
// endpoint sees each partition in order. A failed post is retried with
// backoff and jitter; after the last retry the event goes to the
// dead-letter stream with the failure as extensions, and the partition
// moves on. Offsets are committed only after a 2xx (or the dead letter
// was acknowledged): a crash re-posts, never skips (at-least-once).
//
// The URL is the descriptor's: unless the sink allows private addresses,
// it must be public (proto/egress, the gateway's callback guard), checked
// at start on the URL and on every address dialled, and redirects are not
// followed.
package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/egress"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/obs"
)

// Config is one HTTP sink.
type Config struct {
	Deployment, Bridge string
	Spec               descriptor.HTTPSink
	// Topic is read; DeadLetter receives what failed (both namespaced).
	Topic, DeadLetter string
	// Group is the sink's consumer group.
	Group   string
	Kafka   kit.KafkaConfig
	Logger  *slog.Logger
	Metrics *Metrics
	// Client posts; default a client with Spec.Timeout. Either way it is
	// wrapped by egress.Client (no redirects; public addresses only unless
	// Spec.AllowPrivate), except a Client with its own Transport.
	Client *http.Client
}

// Metrics of every sink of a process.
type Metrics struct {
	Delivered    *prometheus.CounterVec
	Failures     *prometheus.CounterVec
	DeadLettered *prometheus.CounterVec
}

// NewMetrics registers the sink metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	l := []string{"deployment", "bridge"}
	m := &Metrics{
		Delivered:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "butter_bridge_sink_delivered_total", Help: "Events an HTTP sink's endpoint accepted (2xx)."}, l),
		Failures:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "butter_bridge_sink_failures_total", Help: "Failed posts (each retry counts)."}, l),
		DeadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "butter_bridge_sink_dead_lettered_total", Help: "Events sent to the dead-letter stream after the last retry."}, l),
	}
	if reg != nil {
		reg.MustRegister(m.Delivered, m.Failures, m.DeadLettered)
	}
	return m
}

// ErrRefused means the sink's URL is refused by the SSRF guard (or is not
// an http(s) URL): starting again does not help until the descriptor
// changes.
var ErrRefused = errors.New("sink refused")

// Run posts the stream's events until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if err := egress.CheckURL(ctx, cfg.Spec.URL, cfg.Spec.AllowPrivate); err != nil {
		if errors.Is(err, egress.ErrPrivate) {
			err = fmt.Errorf("%w (set allowPrivate: true on the sink to allow it)", err)
		}
		return fmt.Errorf("%w: sink url %s: %w", ErrRefused, cfg.Spec.URL, err)
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: time.Duration(cfg.Spec.Timeout)}
	}
	cfg.Client = egress.Client(cfg.Client, cfg.Spec.AllowPrivate)
	log := cfg.Logger.With("deployment", cfg.Deployment, "bridge", cfg.Bridge)
	cl, err := cfg.Kafka.NewClient(
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.RecordDeliveryTimeout(30*time.Second),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	// Runs before Close: a client blocking rebalances waits for this
	// before it can leave the group.
	defer cl.AllowRebalance()
	s := &sinker{cfg: cfg, log: log, cl: cl, limit: newLimiter(cfg.Spec.RateLimit)}
	for {
		fs := cl.PollRecords(ctx, 500)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			log.Warn("fetch", kit.KeyStream, t, kit.KeyPartition, p, kit.KeyError, err)
		})
		// Partitions run side by side; each in order.
		var wg sync.WaitGroup
		var mu sync.Mutex
		var done []*kgo.Record
		var failed error
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				last, err := s.partition(ctx, p.Records)
				mu.Lock()
				defer mu.Unlock()
				if last != nil {
					done = append(done, last)
				}
				if err != nil && ctx.Err() == nil {
					failed = err
				}
			}()
		})
		wg.Wait()
		if len(done) > 0 {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			if err := cl.CommitRecords(cctx, done...); err != nil {
				log.Warn("commit offsets", kit.KeyError, err)
			}
			cancel()
		}
		if ctx.Err() != nil {
			return nil
		}
		if failed != nil {
			// The fetch position is past records not handled: only a new
			// client, from the committed offsets, gets them again.
			return failed
		}
		cl.AllowRebalance()
	}
}

type sinker struct {
	cfg   Config
	log   *slog.Logger
	cl    *kgo.Client
	limit *limiter // nil: no rate limit
}

// partition posts recs in order and returns the last one handled (to
// commit), nil if none was, and why it stopped early.
func (s *sinker) partition(ctx context.Context, recs []*kgo.Record) (*kgo.Record, error) {
	var last *kgo.Record
	for _, r := range recs {
		if err := s.deliver(ctx, r); err != nil {
			return last, err
		}
		last = r
	}
	return last, nil
}

// deliver posts r until a 2xx or the last retry, then dead-letters it. It
// fails only when ctx ends or the dead letter cannot be written.
func (s *sinker) deliver(ctx context.Context, r *kgo.Record) error {
	d := envelope.FromRecord(r)
	l := []string{s.cfg.Deployment, s.cfg.Bridge}
	var lastErr error
	wait := time.Duration(s.cfg.Spec.Backoff)
	for attempt := 0; attempt <= s.cfg.Spec.Retries; attempt++ {
		if attempt > 0 {
			// Full jitter over the upper half: retries of many events
			// spread out, and none comes sooner than half the backoff.
			j := wait/2 + rand.N(wait/2+1)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(j):
			}
			wait = min(2*wait, time.Duration(s.cfg.Spec.MaxBackoff))
		}
		if err := s.limit.wait(ctx); err != nil {
			return err
		}
		lastErr = s.post(ctx, d)
		if lastErr == nil {
			s.cfg.Metrics.Delivered.WithLabelValues(l...).Inc()
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.cfg.Metrics.Failures.WithLabelValues(l...).Inc()
		s.log.Debug("post failed", kit.KeyPartition, r.Partition, kit.KeyOffset, r.Offset, "attempt", attempt+1, kit.KeyError, lastErr)
	}
	e := d.Event.Clone()
	e.SetExtension(obs.ExtDLQError, lastErr.Error())
	e.SetExtension(obs.ExtDLQAttempts, strconv.Itoa(s.cfg.Spec.Retries+1))
	e.SetExtension(obs.ExtDLQStream, r.Topic)
	e.SetExtension(obs.ExtDLQPartition, strconv.Itoa(int(r.Partition)))
	e.SetExtension(obs.ExtDLQOffset, strconv.FormatInt(r.Offset, 10))
	dl, err := envelope.ToRecord(s.cfg.DeadLetter, e)
	if err != nil {
		return err
	}
	dl.Key = r.Key
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := s.cl.ProduceSync(pctx, dl).FirstErr(); err != nil {
		s.log.Error("dead-letter", kit.KeyPartition, r.Partition, kit.KeyOffset, r.Offset, kit.KeyError, err)
		return err
	}
	s.cfg.Metrics.DeadLettered.WithLabelValues(l...).Inc()
	s.log.Warn("event dead-lettered", kit.KeyPartition, r.Partition, kit.KeyOffset, r.Offset, kit.KeyError, lastErr)
	return nil
}

// errStatus is a response other than 2xx.
var errStatus = errors.New("endpoint answered")

func (s *sinker) post(ctx context.Context, d envelope.Delivery) error {
	req, err := cehttp.NewHTTPRequestFromEvent(ctx, s.cfg.Spec.URL, d.Event)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%w %s", errStatus, resp.Status)
	}
	return nil
}
