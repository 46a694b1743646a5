// Package metrics defines atoll's Prometheus metrics on an injected
// registerer (never the global one, never in init), so tests can use a fresh
// registry and assert on values.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Namespace prefixes every metric.
const Namespace = "atoll"

// ControlPlane holds the control plane's metrics.
type ControlPlane struct {
	APIRequests    *prometheus.CounterVec
	APILatency     *prometheus.HistogramVec
	FSMApply       *prometheus.HistogramVec
	FSMApplyErrors *prometheus.CounterVec
	RaftApply      prometheus.Histogram
	LeaderChanges  prometheus.Counter
	ForwardedCalls *prometheus.CounterVec
}

// NewControlPlane creates and registers the control-plane metrics on reg.
func NewControlPlane(reg prometheus.Registerer) *ControlPlane {
	m := &ControlPlane{
		APIRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "api", Name: "requests_total",
			Help: "API requests by gRPC method and result code.",
		}, []string{"method", "code"}),
		APILatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "api", Name: "request_duration_seconds",
			Help:    "API request latency by gRPC method.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}, []string{"method"}),
		FSMApply: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "fsm", Name: "apply_duration_seconds",
			Help:    "Time to apply one command to the state store, by command.",
			Buckets: prometheus.ExponentialBuckets(0.000005, 2, 16),
		}, []string{"command"}),
		FSMApplyErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "fsm", Name: "apply_refused_total",
			Help: "Commands the state machine refused (quota, conflicts, not found), by command.",
		}, []string{"command"}),
		RaftApply: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "raft", Name: "apply_duration_seconds",
			Help:    "Time from proposing a command to its being applied on the leader (commit + apply).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}),
		LeaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "raft", Name: "leadership_changes_total",
			Help: "Times this server gained or lost leadership.",
		}),
		ForwardedCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "api", Name: "forwarded_total",
			Help: "Calls this server forwarded to the leader, by method.",
		}, []string{"method"}),
	}
	reg.MustRegister(m.APIRequests, m.APILatency, m.FSMApply, m.FSMApplyErrors, m.RaftApply, m.LeaderChanges, m.ForwardedCalls)
	return m
}

// ObserveApply records one FSM apply (implements fsm.Observer).
func (m *ControlPlane) ObserveApply(kind string, d time.Duration, err error) {
	m.FSMApply.WithLabelValues(kind).Observe(d.Seconds())
	if err != nil {
		m.FSMApplyErrors.WithLabelValues(kind).Inc()
	}
}

// GaugeFuncs registers gauges whose values are read at scrape time.
func GaugeFuncs(reg prometheus.Registerer, subsystem string, gauges map[string]struct {
	Help string
	F    func() float64
}) {
	for name, g := range gauges {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: Namespace, Subsystem: subsystem, Name: name, Help: g.Help,
		}, g.F))
	}
}

// ObjectCounter reports object counts by type, read at scrape time.
type ObjectCounter struct {
	desc  *prometheus.Desc
	count func() map[string]int
}

// NewObjectCounter registers a collector of object counts.
func NewObjectCounter(reg prometheus.Registerer, count func() map[string]int) {
	reg.MustRegister(&ObjectCounter{
		desc:  prometheus.NewDesc(Namespace+"_state_objects", "Objects in the state store, by type.", []string{"type"}, nil),
		count: count,
	})
}

// Describe implements prometheus.Collector.
func (c *ObjectCounter) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *ObjectCounter) Collect(ch chan<- prometheus.Metric) {
	for typ, n := range c.count() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), typ)
	}
}
