package firing

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the timer's Prometheus metrics.
type Metrics struct {
	ticks      *prometheus.CounterVec
	lag        prometheus.Histogram
	owned      prometheus.Gauge
	partitions prometheus.Gauge
	txnErrors  prometheus.Counter
	refused    *prometheus.CounterVec

	mu         sync.Mutex
	ownedByPar map[int32]int
}

// NewMetrics registers the timer's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		ticks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "butter_timer_ticks_total", Help: "Ticks fired (committed) by this replica, per schedule.",
		}, []string{"schedule"}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "butter_timer_fire_lag_seconds", Help: "Fired time minus scheduled time of every tick this replica fired; caught-up ticks land in the top buckets.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
		owned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "butter_timer_owned_schedules", Help: "Schedules this replica fires now.",
		}),
		partitions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "butter_timer_owned_partitions", Help: "Partitions of _butter.timers this replica owns now.",
		}),
		txnErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "butter_timer_transaction_errors_total", Help: "Failed tick transactions (fenced by a newer owner, or a broker error); the partition is taken over again.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "butter_timer_refused_ticks_total", Help: "Tick batches a schedule's stream refused (too large, not authorized); the schedule is retried with backoff.",
		}, []string{"schedule"}),
		ownedByPar: map[int32]int{},
	}
	reg.MustRegister(m.ticks, m.lag, m.owned, m.partitions, m.txnErrors, m.refused)
	return m
}

// setOwned records how many schedules partition p holds while owned; a
// negative n means the partition is no longer owned.
func (m *Metrics) setOwned(p int32, n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n < 0 {
		delete(m.ownedByPar, p)
	} else {
		m.ownedByPar[p] = n
	}
	total := 0
	for _, v := range m.ownedByPar {
		total += v
	}
	m.owned.Set(float64(total))
	m.partitions.Set(float64(len(m.ownedByPar)))
}
