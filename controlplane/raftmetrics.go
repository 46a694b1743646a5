package controlplane

import (
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/atollhq/atoll/metrics"
)

func (s *Server) registerRaftMetrics(reg prometheus.Registerer) {
	type g = struct {
		Help string
		F    func() float64
	}
	metrics.GaugeFuncs(reg, "raft", map[string]g{
		"state":        {"Raft state: 0 follower, 1 candidate, 2 leader, 3 shutdown.", func() float64 { return float64(s.raft.State()) }},
		"is_leader":    {"1 if this server is the raft leader.", func() float64 { return b2f(s.raft.State() == raft.Leader) }},
		"term":         {"Current raft term.", func() float64 { return float64(s.raftStat("term")) }},
		"commit_index": {"Raft commit index.", func() float64 { return float64(s.raftStat("commit_index")) }},
		"applied_index": {"Raft index applied to the state machine.", func() float64 {
			return float64(s.raft.AppliedIndex())
		}},
		"last_log_index": {"Last raft log index.", func() float64 { return float64(s.raft.LastIndex()) }},
	})
	if s.certs != nil {
		metrics.GaugeFuncs(reg, "tls", map[string]g{
			"certificate_expiry_timestamp_seconds": {"When this server's TLS certificate expires (Unix time; it follows a reload): alert well before.",
				func() float64 { return float64(s.certs.NotAfter().Unix()) }},
		})
	}
	metrics.NewObjectCounter(reg, func() map[string]int {
		st, _ := s.fsm.State()
		tx := st.Snapshot()
		out := map[string]int{"organization": 0, "project": 0, "environment": 0, "token": 0}
		for _, o := range tx.Organizations() {
			out["organization"]++
			out["project"] += len(tx.Projects(o.Id))
			out["token"] += len(tx.Tokens(o.Id))
			for _, e := range tx.Environments(o.Id) {
				if !e.IsDeleted {
					out["environment"]++
				}
			}
		}
		out["server"] = len(tx.Servers())
		return out
	})
}

func (s *Server) raftStat(key string) uint64 {
	var v uint64
	for _, c := range s.raft.Stats()[key] {
		if c < '0' || c > '9' {
			break
		}
		v = v*10 + uint64(c-'0')
	}
	return v
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
