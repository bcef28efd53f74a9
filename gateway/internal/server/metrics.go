package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the gateway's Prometheus metrics. The route label is the
// route context ("none" when no route matched), so its cardinality is the
// number of routes, never the number of paths.
type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	inFlight prometheus.Gauge
	rejects  *prometheus.CounterVec
	replies  *prometheus.CounterVec
	// openConns and bodyTimeouts show slow clients and the connection cap
	// at work (Limits).
	openConns    prometheus.Gauge
	bodyTimeouts prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "butter_gateway_requests_total", Help: "HTTP requests answered, by route context and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "butter_gateway_request_duration_seconds", Help: "Time to answer a request, by route context.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"route"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "butter_gateway_in_flight_requests", Help: "Requests being answered now.",
		}),
		rejects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "butter_gateway_auth_rejects_total", Help: "Requests refused for missing or bad credentials (401) or scopes (403).",
		}, []string{"route", "code"}),
		replies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "butter_gateway_replies_total", Help: "Reply events read, by outcome: sync (answered a waiting request), async (completed a stored request), other (for another replica, too late, or from a function other than the route's).",
		}, []string{"outcome"}),
		openConns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "butter_gateway_open_connections", Help: "Client connections open now (capped by --max-conns).",
		}),
		bodyTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "butter_gateway_body_timeouts_total", Help: "Requests answered 408 because their body did not arrive in time.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.latency, m.inFlight, m.rejects, m.replies, m.openConns, m.bodyTimeouts)
	}
	return m
}

// statusWriter records the status written.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
