package metrics

import "github.com/prometheus/client_golang/prometheus"

// Scheduler holds the leader's scheduling metrics.
type Scheduler struct {
	Placements       prometheus.Counter
	Stops            prometheus.Counter
	FailedPlacements *prometheus.CounterVec
	Evaluation       prometheus.Histogram
	PlanRejections   prometheus.Counter
	Pending          prometheus.Gauge
}

// NewScheduler creates and registers the scheduler metrics on reg.
func NewScheduler(reg prometheus.Registerer) *Scheduler {
	m := &Scheduler{
		Placements: prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "scheduler", Name: "placements_total",
			Help: "Instances placed on nodes."}),
		Stops: prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "scheduler", Name: "stops_total",
			Help: "Instances stopped by scheduling decisions (scale down, node down, drain, rollout)."}),
		FailedPlacements: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "scheduler", Name: "failed_placements_total",
			Help: "Evaluations that left replicas unplaced, by the most common reason."}, []string{"reason"}),
		Evaluation: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Subsystem: "scheduler", Name: "evaluation_duration_seconds",
			Help: "Time to compute and commit one plan.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		PlanRejections: prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "scheduler", Name: "plan_rejections_total",
			Help: "Plans the state machine refused as stale."}),
		Pending: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Subsystem: "scheduler", Name: "pending_apps",
			Help: "Apps with replicas that could not be placed."}),
	}
	reg.MustRegister(m.Placements, m.Stops, m.FailedPlacements, m.Evaluation, m.PlanRejections, m.Pending)
	return m
}
