package engine

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/obs"
	"github.com/buttercompass/butter/proto/topics"
)

// metrics are the engine's Prometheus metrics, labelled by deployment and
// function.
type metrics struct {
	processed    *prometheus.CounterVec
	failed       *prometheus.CounterVec
	deadLettered *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	inFlight     *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	labels := []string{"deployment", "function"}
	m := &metrics{
		processed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "butter_fnbox_events_processed_total",
			Help: "Events handled: succeeded, filtered out or dead-lettered.",
		}, labels),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "butter_fnbox_invocations_failed_total",
			Help: "Invocation attempts that failed (each retry counts).",
		}, labels),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "butter_fnbox_events_dead_lettered_total",
			Help: "Events written to the dead-letter stream.",
		}, labels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "butter_fnbox_invocation_duration_seconds",
			Help:    "Duration of one invocation attempt.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}, labels),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "butter_fnbox_events_in_flight",
			Help: "Events being processed now.",
		}, labels),
	}
	if reg != nil {
		reg.MustRegister(m.processed, m.failed, m.deadLettered, m.duration, m.inFlight)
	}
	return m
}

// stats are one function's counters for heartbeats and metrics.
type stats struct {
	processed, errors atomic.Int64
	inFlight          atomic.Int64

	processedM, failedM, deadM prometheus.Counter
	durationM                  prometheus.Observer
	inFlightM                  prometheus.Gauge

	mu        sync.Mutex
	durations []time.Duration // since the last heartbeat
	assigned  map[obs.Partition]bool
}

func newStats(m *metrics, deployment, function string) *stats {
	return &stats{
		processedM: m.processed.WithLabelValues(deployment, function),
		failedM:    m.failed.WithLabelValues(deployment, function),
		deadM:      m.deadLettered.WithLabelValues(deployment, function),
		durationM:  m.duration.WithLabelValues(deployment, function),
		inFlightM:  m.inFlight.WithLabelValues(deployment, function),
		assigned:   map[obs.Partition]bool{},
	}
}

func (s *stats) begin(n int) { s.inFlight.Add(int64(n)); s.inFlightM.Add(float64(n)) }
func (s *stats) end(n int)   { s.inFlight.Add(-int64(n)); s.inFlightM.Sub(float64(n)) }

func (s *stats) done(n int)    { s.processed.Add(int64(n)); s.processedM.Add(float64(n)) }
func (s *stats) failure()      { s.errors.Add(1); s.failedM.Inc() }
func (s *stats) deadLettered() { s.deadM.Inc() }

func (s *stats) observe(d time.Duration) {
	s.durationM.Observe(d.Seconds())
	s.mu.Lock()
	defer s.mu.Unlock()
	// Bounded: a heartbeat's p95 needs a sample, not every duration.
	if len(s.durations) < 10000 {
		s.durations = append(s.durations, d)
	}
}

// setAssigned adds (on) or removes partitions of the assignment.
func (s *stats) setAssigned(ns topics.Namespace, parts map[string][]int32, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for topic, ps := range parts {
		stream, _ := ns.Stream(topic)
		for _, p := range ps {
			if on {
				s.assigned[obs.Partition{Stream: stream, Partition: p}] = true
			} else {
				delete(s.assigned, obs.Partition{Stream: stream, Partition: p})
			}
		}
	}
}

// heartbeat takes a heartbeat and starts the next p95 window.
func (s *stats) heartbeat() obs.Heartbeat {
	s.mu.Lock()
	ds := s.durations
	s.durations = nil
	parts := make([]obs.Partition, 0, len(s.assigned))
	for p := range s.assigned {
		parts = append(parts, p)
	}
	s.mu.Unlock()
	slices.SortFunc(parts, func(a, b obs.Partition) int {
		if a.Stream != b.Stream {
			if a.Stream < b.Stream {
				return -1
			}
			return 1
		}
		return int(a.Partition - b.Partition)
	})
	var p95 float64
	if len(ds) > 0 {
		slices.Sort(ds)
		p95 = float64(ds[(len(ds)*95-1)/100]) / float64(time.Millisecond)
	}
	return obs.Heartbeat{
		Time:       time.Now().UTC(),
		InFlight:   int(s.inFlight.Load()),
		Processed:  s.processed.Load(),
		Errors:     s.errors.Load(),
		P95Ms:      p95,
		Partitions: parts,
	}
}

// heartbeats sends the function's heartbeat every interval until ctx is
// done, and a last one marked Stopping.
func (r *runner) heartbeats(ctx context.Context) {
	t := time.NewTicker(r.e.cfg.HeartbeatInterval)
	defer t.Stop()
	send := func(ctx context.Context, stopping bool) {
		h := r.stats.heartbeat()
		h.Deployment, h.Function, h.Instance, h.Stopping = r.e.cfg.Deployment.Name, r.fn.Name, r.e.cfg.Instance, stopping
		h.Admin = r.e.cfg.Admin
		rec, err := h.Record(r.e.ns.Topic(topics.Heartbeats))
		if err != nil {
			r.log.Error("encode heartbeat", kit.KeyError, err)
			return
		}
		if stopping {
			// The last one is waited for: the producer closes right after.
			if err := r.e.prod.ProduceSync(ctx, rec).FirstErr(); err != nil {
				r.log.Warn("send last heartbeat", kit.KeyError, err)
			}
			return
		}
		r.e.prod.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			if err != nil && ctx.Err() == nil {
				r.log.Warn("send heartbeat", kit.KeyError, err)
			}
		})
	}
	send(ctx, false)
	for {
		select {
		case <-t.C:
			send(ctx, false)
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			send(sctx, true)
			return
		}
	}
}
