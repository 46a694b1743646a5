package agent

import (
	"github.com/prometheus/client_golang/prometheus"

	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

type metrics struct {
	instances  *prometheus.GaugeVec
	starts     prometheus.Counter
	failures   prometheus.Counter
	reconnects prometheus.Counter
	reconcile  prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		instances: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "atoll_agent_instances", Help: "Instances on this node by state.",
		}, []string{"state"}),
		starts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "atoll_agent_container_starts_total", Help: "Containers started.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "atoll_agent_container_failures_total", Help: "Container exits, failed starts and runtime errors.",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "atoll_agent_session_reconnects_total", Help: "Sessions with the control plane rebuilt after an error.",
		}),
		reconcile: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "atoll_agent_reconcile_duration_seconds", Help: "Duration of one reconcile step of one instance.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}),
	}
	if reg != nil {
		reg.MustRegister(m.instances, m.starts, m.failures, m.reconnects, m.reconcile)
	}
	return m
}

// setInstances sets the per-state gauge from the current statuses.
func (m *metrics) setInstances(statuses map[string]*atollv1.InstanceStatus) {
	counts := map[atollv1.InstanceState]int{}
	for _, s := range statuses {
		counts[s.State]++
	}
	for _, st := range []atollv1.InstanceState{atollv1.InstanceState_INSTANCE_STARTING, atollv1.InstanceState_INSTANCE_RUNNING,
		atollv1.InstanceState_INSTANCE_FAILED, atollv1.InstanceState_INSTANCE_ERROR, atollv1.InstanceState_INSTANCE_STOPPED} {
		m.instances.WithLabelValues(stateName(st)).Set(float64(counts[st]))
	}
}

func stateName(s atollv1.InstanceState) string {
	n := s.String()
	if len(n) > len("INSTANCE_") {
		return n[len("INSTANCE_"):]
	}
	return n
}
