package metrics

import "github.com/prometheus/client_golang/prometheus"

// Usage holds live resource usage reported by the agents, and agent session gauges.
type Usage struct {
	Environment *prometheus.GaugeVec
	Node        *prometheus.GaugeVec
	NodeAlloc   *prometheus.GaugeVec
	Sessions    prometheus.Gauge
	NodesDown   prometheus.Counter
}

// NewUsage creates and registers the usage metrics on reg.
func NewUsage(reg prometheus.Registerer) *Usage {
	m := &Usage{
		Environment: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "environment_usage",
			Help: "Measured usage of an environment's instances: cpu in millicores, memory and storage in MB."}, []string{"environment", "resource"}),
		Node: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "node_usage",
			Help: "Measured usage of a node's instances: cpu in millicores, memory and storage in MB."}, []string{"node", "resource"}),
		NodeAlloc: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "node_allocatable",
			Help: "Allocatable capacity of a node: cpu in millicores, memory and storage in MB."}, []string{"node", "resource"}),
		Sessions: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Name: "agent_sessions",
			Help: "Agent sessions held by this server (the leader)."}),
		NodesDown: prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: "nodes_marked_down_total",
			Help: "Nodes marked DOWN after their heartbeats stopped."}),
	}
	reg.MustRegister(m.Environment, m.Node, m.NodeAlloc, m.Sessions, m.NodesDown)
	return m
}
