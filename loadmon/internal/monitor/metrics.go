package monitor

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are loadmon's Prometheus metrics. A nil *Metrics records
// nothing.
type Metrics struct {
	decisions *prometheus.CounterVec
	lag       *prometheus.GaugeVec
	replicas  *prometheus.GaugeVec
	isOwner   prometheus.Gauge
	ticks     prometheus.Histogram
}

// NewMetrics registers loadmon's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "butter_loadmon_decisions_total", Help: "Scale decisions written by this replica, per reason.",
		}, []string{"reason"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "butter_loadmon_lag", Help: "Consumer lag of a function's group over its bound streams, as of the last tick (owner only).",
		}, []string{"deployment", "function"}),
		replicas: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "butter_loadmon_desired_replicas", Help: "Instances decided for a function (owner only).",
		}, []string{"deployment", "function"}),
		isOwner: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "butter_loadmon_owner", Help: "1 while this replica is the one deciding.",
		}),
		ticks: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "butter_loadmon_tick_seconds", Help: "Time to read every function's lag and decide.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
	}
	reg.MustRegister(m.decisions, m.lag, m.replicas, m.isOwner, m.ticks)
	return m
}

func (m *Metrics) decided(reason string) {
	if m != nil {
		m.decisions.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) function(deployment, fn string, lag int64, replicas int) {
	if m != nil {
		m.lag.WithLabelValues(deployment, fn).Set(float64(lag))
		m.replicas.WithLabelValues(deployment, fn).Set(float64(replicas))
	}
}

func (m *Metrics) owner(own bool) {
	if m == nil {
		return
	}
	if own {
		m.isOwner.Set(1)
	} else {
		m.isOwner.Set(0)
	}
}

func (m *Metrics) tick(d time.Duration) {
	if m != nil {
		m.ticks.Observe(d.Seconds())
	}
}
